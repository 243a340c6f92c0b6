"""The review server under load: N clips, several annotators judging at once, against 127.0.0.1 only.

The server runs as `rlhf-asr review serve` in its own process, as people would run it. Each
annotator is a thread with its own keep-alive HTTP connection: ask for the next clip (timed), judge
it (mostly choose, some corrections, skips and no-speech), and now and then undo. The client keeps
what it was told was saved; afterwards the database must hold exactly that: no judgment lost, none
twice, no clip judged by two annotators. Candidates are made up: this measures serving, not decoding.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

from rlhf_asr.errors import UserInputError
from rlhf_asr.review.clips import Clip, fingerprint
from rlhf_asr.review.store import MODEL, ReviewStore

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_dataset(folder: Path, clips: int, judged_before: int = 0) -> tuple[Path, Path]:
    """(manifest, database) of `clips` rows sharing one short wav, with three made-up candidates each.

    judged_before: clips 1..N already judged (by "earlier"), to measure late in a campaign.
    """
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / "clip.wav", np.zeros(8000, np.float32), 16000)
    manifest, db = folder / "clips.jsonl", folder / "review.sqlite"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i in range(clips):
            handle.write(json.dumps({"audio": {"path": "clip.wav"}, "duration": 0.5, "sentence": f"clip {i}"}) + "\n")
    rows = [
        Clip(i + 1, str((folder / "clip.wav").absolute()), 0.5, None, (("reference", f"clip {i}"),))
        for i in range(clips)
    ]
    store = ReviewStore(db)
    store.attach_dataset(rows, fingerprint(rows, manifest), str(manifest))
    store.add_candidates(
        [
            (i + 1, [(MODEL, f"clip {i} one", -0.1), (MODEL, f"clip {i} won", -0.2), ("reference", f"clip {i}", None)])
            for i in range(clips)
        ]  # fmt: skip
    )
    with store.write() as db_:
        db_.executemany(
            "INSERT INTO judgments (clip_id, annotator, action, rank, text, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(i, "earlier", "choose", 0, f"clip {i - 1} one", time.time()) for i in range(1, judged_before + 1)],
        )
    return manifest, db


def start_server(manifest: Path, db: Path, annotators: Path, port: int, timeout: float = 120) -> subprocess.Popen:
    """`rlhf-asr review serve` in a new process, returned once it accepts connections."""
    command = [sys.executable, "-m", "rlhf_asr.commands.cli", "--quiet", "review", "serve", "--data", str(manifest),
               "--db", str(db), "--annotators", str(annotators), "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserInputError(f"the review server stopped: {process.stderr.read().strip()}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise UserInputError(f"the review server did not start within {timeout:g} s")


class Annotator(threading.Thread):
    def __init__(self, name: str, token: str, port: int, judgments: int, seed: int):
        super().__init__(name=name)
        self.token, self.port, self.judgments, self.rng = token, port, judgments, random.Random(seed)
        self.saved: dict[int, str] = {}  # clip -> action, as the server confirmed it
        self.next_ms: list[float] = []
        self.progress_ms: list[float] = []  # the page asks for the counts once the clip shows
        self.errors: list[str] = []

    def request(self, connection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            for step in range(self.judgments):
                start = time.perf_counter()
                status, data = self.request(connection, "GET", "/api/next")
                self.next_ms.append((time.perf_counter() - start) * 1000)
                if status != 200 or data["clip"] is None:
                    self.errors.append(f"next: {status}")
                    break
                clip = data["clip"]["id"]
                start = time.perf_counter()
                self.request(connection, "GET", "/api/progress")
                self.progress_ms.append((time.perf_counter() - start) * 1000)
                roll = self.rng.random()
                body = {"clip": clip, "action": "choose", "rank": self.rng.randrange(3)}
                if roll < 0.1:
                    body = {"clip": clip, "action": "correct", "text": f"corrected {clip}"}
                elif roll < 0.15:
                    body = {"clip": clip, "action": "skip"}
                elif roll < 0.2:
                    body = {"clip": clip, "action": "no_speech"}
                status, _ = self.request(connection, "POST", "/api/judge", body)
                if status != 200:
                    self.errors.append(f"judge clip {clip}: {status}")
                    continue
                self.saved[clip] = body["action"]
                if step % 20 == 19:  # undo the last one: it must vanish from the database
                    status, data = self.request(connection, "POST", "/api/undo", {})
                    if status == 200 and data.get("undone") is not None:
                        self.saved.pop(data["undone"], None)
        except (OSError, ValueError, http.client.HTTPException) as error:
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            connection.close()


def run_loadcheck(
    output: str | Path,
    clips: int = 10_000,
    annotators: int = 4,
    judgments: int = 250,
    workdir: str | None = None,
    judged_before: int = 0,
) -> dict:
    """Runs the check, writes the raw JSON to `output`, returns it ({"summary": ..., "annotators": ...})."""
    with tempfile.TemporaryDirectory(prefix="review-loadcheck-") as scratch:
        folder = Path(workdir or scratch)
        started = time.perf_counter()
        manifest, db = make_dataset(folder, clips, judged_before)
        setup_s = time.perf_counter() - started
        tokens = {f"annotator{i + 1}": f"token-{i + 1}-{os.urandom(8).hex()}" for i in range(annotators)}
        (folder / "annotators.txt").write_text("".join(f"{n} {t}\n" for n, t in tokens.items()), encoding="utf-8")
        port = free_port()
        server = start_server(manifest, db, folder / "annotators.txt", port)
        try:
            threads = [
                Annotator(name, token, port, judgments, seed) for seed, (name, token) in enumerate(tokens.items())
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall_s = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        result = _verify(ReviewStore(db), threads)
    times = sorted(t for thread in threads for t in thread.next_ms)
    summary = {
        "clips": clips,
        "annotators": annotators,
        "judged_before": judged_before,
        "judgments_asked": annotators * judgments,
        "judgments_saved": sum(len(thread.saved) for thread in threads),
        **result,
        "errors": [e for thread in threads for e in thread.errors],
        "next_clip_ms": _spread(times),
        "progress_ms": _spread(sorted(t for thread in threads for t in thread.progress_ms)),
        "wall_s": round(wall_s, 2),
        "setup_s": round(setup_s, 2),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min_after": round(os.getloadavg()[0], 2),  # other work on the machine slows serving
        },
    }
    median = summary["next_clip_ms"]["median"]
    summary["ok"] = bool(
        not result["lost"] and not result["duplicated"] and not result["unexpected"] and not result["shared_clips"]
        and not summary["errors"] and median is not None and median < 100
    )  # fmt: skip
    raw = {"summary": summary, "next_clip_ms": {t.name: [round(x, 3) for x in t.next_ms] for t in threads}}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return raw


def _spread(times: list[float]) -> dict:
    """Count, median, 95th percentile and max of sorted times."""
    if not times:
        return {"requests": 0, "median": None, "p95": None, "max": None}
    return {"requests": len(times), "median": round(statistics.median(times), 2),
            "p95": round(times[int(0.95 * (len(times) - 1))], 2), "max": round(times[-1], 2)}  # fmt: skip


def _verify(store: ReviewStore, threads: list[Annotator]) -> dict:
    """What the database holds against what each client was told was saved."""
    lost = duplicated = unexpected = 0
    for thread in threads:
        live = store.live_judgments(thread.name)
        clips = [j.clip_id for j in live]
        duplicated += len(clips) - len(set(clips))
        held = {j.clip_id: j.action for j in live}
        lost += sum(1 for clip, action in thread.saved.items() if held.get(clip) != action)
        unexpected += sum(1 for clip in held if clip not in thread.saved)
    judged = [j.clip_id for j in store.live_judgments() if j.action != "skip"]
    return {"lost": lost, "duplicated": duplicated, "unexpected": unexpected,
            "shared_clips": len(judged) - len(set(judged))}  # fmt: skip
