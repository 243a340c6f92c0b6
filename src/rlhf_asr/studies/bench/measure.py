"""Peak memory and step time of a training step, measured the same way for every mode.

CPU: the real peak resident set size of the process, read from the kernel (`VmHWM` in
/proc/self/status) after resetting it with `echo 5 > /proc/self/clear_refs`. This sees every
allocation (torch, numpy, the allocator's retained pages), which torch's own CPU counters do not.
Where the reset is refused (non-Linux, old kernels, some sandboxes) a thread samples `VmRSS` at
high frequency instead; it can miss a short spike, so the method used is reported.

CUDA: torch's allocator peak (`max_memory_allocated`), reset with `reset_peak_memory_stats`.

Either way the caller takes a baseline once the model, the optimizer and the optimizer's state
exist (after the warm-up steps), so `peak - baseline` is what a step costs on top of the model.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import statistics
import threading
import time
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MB = 1024**2


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1))


def rss_mb() -> float:
    """Current resident set size of this process, in MiB."""
    return _status_kb("VmRSS") / 1024


def release_free_memory() -> None:
    """Gives freed heap pages back to the OS (glibc), so a baseline does not count the allocator's cache."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CpuPeak:
    """Peak resident memory since the last `reset()`, in MiB; `method` says how it was obtained."""

    def __init__(self, force_sampling: bool = False, interval_s: float = 0.0005):
        self.interval_s = interval_s
        self.method = "sampling" if force_sampling or not self._can_reset() else "vmhwm"
        self._sampled = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.method == "sampling":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    @staticmethod
    def _can_reset() -> bool:
        try:
            _status_kb("VmHWM")
            _CLEAR_REFS.write_text("5")
            return True
        except OSError:
            return False

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, rss_mb())
            time.sleep(self.interval_s)

    def reset(self) -> None:
        if self.method == "vmhwm":
            _CLEAR_REFS.write_text("5")
        else:
            self._sampled = rss_mb()

    def peak_mb(self) -> float:
        if self.method == "vmhwm":
            return _status_kb("VmHWM") / 1024
        return max(self._sampled, rss_mb())

    def current_mb(self) -> float:
        return rss_mb()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class CudaPeak:
    """Peak memory held by torch's CUDA allocator since the last `reset()`, in MiB."""

    method = "cuda_max_memory_allocated"

    def __init__(self, device: torch.device | str = "cuda"):
        self.device = torch.device(device)

    def reset(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / MB

    def current_mb(self) -> float:
        return torch.cuda.memory_allocated(self.device) / MB

    def close(self) -> None:
        pass


def peak_meter(device: str, force_sampling: bool = False) -> CpuPeak | CudaPeak:
    return CudaPeak(device) if device.startswith("cuda") else CpuPeak(force_sampling)


def settle(device: str) -> None:
    """Waits for queued GPU work and hands freed memory back, before a baseline or a timer read."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    else:
        release_free_memory()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_info(device: str) -> dict:
    """What a reader needs to compare two benchmark files: CPU, cores, library versions, load."""
    import peft
    import transformers

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "device": device,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
