"""AdaLoRA's orthogonal regulariser (Zhang et al. 2023, https://arxiv.org/abs/2303.10512, eq. 4).

AdaLoRA writes each update as P diag(E) Q and prunes singular values in E; that is only a
singular value decomposition if P and Q stay orthogonal, which this penalty keeps them near:

    R = mean over adapted matrices of ||A A^T - I||_F (A = lora_A, [r, in]) and ||B^T B - I||_F (B = lora_B, [out, r])

PEFT adds `orth_reg_weight * R` only inside `AdaLoraModel.forward` when the wrapped model returns
a loss. The packed engine calls the decoder directly, so the trainer adds it itself, computed
exactly as PEFT computes it (PEFT 0.21, `peft/tuners/adalora/model.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def orth_reg(named_parameters: Iterable[tuple[str, torch.Tensor]], adapter_name: str = "default") -> torch.Tensor:
    """R above over the `lora_A` / `lora_B` matrices of `adapter_name`; a 0-dim tensor, 0 if there are none.

    Unweighted: the caller multiplies by the AdaLoRA config's `orth_reg_weight`. Differentiable
    with respect to every matrix it reads.
    """
    total, count = None, 0
    for name, param in named_parameters:
        if ("lora_A" in name or "lora_B" in name) and adapter_name in name:
            cov = param @ param.T if "lora_A" in name else param.T @ param  # [r, r]
            eye = torch.eye(*cov.shape, dtype=cov.dtype, device=cov.device)
            norm = torch.linalg.matrix_norm(cov - eye, ord="fro")
            total = norm if total is None else total + norm
            count += 1
    if count == 0:
        return torch.zeros(())
    return total / count
