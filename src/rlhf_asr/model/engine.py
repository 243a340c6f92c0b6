"""The preference forward pass: per-sequence log-probs of the chosen and rejected transcripts.

Three ways to compute the same numbers (they are compared in the tests and in `rlhf-asr bench`):

- "naive": the whole model twice, once per transcript (encoder twice, full logits twice).
- "concat": encoder once, its output copied to double batch, decoder on [chosen; rejected]
  stacked along the batch, full logits (what earlier ORPO-for-Whisper code did).
- "packed" (ours): encoder once; each pair's two transcripts are packed side by side along the
  decoder's time axis, with a block-causal mask and positions restarting at 0 for the rejected
  block. One decoder pass, the audio's cross-attention keys and values computed once and shared,
  no copy of the encoder output, and the label log-probs taken chunk by chunk from the hidden
  states, never as a [2B, L, vocab] tensor.
"""

from __future__ import annotations

import functools

import torch
import torch.utils.checkpoint
from torch import nn

from rlhf_asr.loss.logps import IGNORE_INDEX, chunked_token_logps, logits_token_logps, sequence_logps
from rlhf_asr.model.core import whisper_core
from rlhf_asr.model.encoder_cache import EncoderCache, encoder_fingerprint

MODES = ("packed", "naive", "concat")


def packed_attention_mask(
    chosen_len: int, rejected_len: int, batch: int, device, additive_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """[B, 1, Lc+Lr, Lc+Lr] mask: causal within each block, nothing across blocks.

    Boolean (True = may attend) for SDPA; additive in `additive_dtype` for eager attention, which
    adds the mask to the scores. Padding needs no mask: each block is right-padded, so real tokens
    never see their pads, and pads are never scored.
    """
    total = chosen_len + rejected_len
    causal = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    block = torch.zeros(total, total, dtype=torch.bool, device=device)
    block[:chosen_len, :chosen_len] = True
    block[chosen_len:, chosen_len:] = True
    mask = causal & block
    if additive_dtype is not None:
        mask = torch.zeros(total, total, dtype=additive_dtype, device=device).masked_fill(
            ~mask, torch.finfo(additive_dtype).min
        )
    return mask.expand(batch, 1, total, total)


def checkpoint_decoder_layers(model: nn.Module) -> None:
    """Recompute each decoder layer in the backward pass instead of keeping its activations.

    The packed decoder runs on twice sft's tokens, and its per-token activations (self- and
    cross-attention, the MLP, LoRA's inputs) are what keeps `ours` above `sft` per pair. The
    decoder is cheap to recompute next to the encoder (tens of tokens against 1500 frames), so
    checkpointing it, layer by layer, buys that memory back for some step time (the recompute
    includes each layer's cross-attention projections over the audio frames): opt-in.
    Layer by layer matters: the decoder's backward runs while the encoder's activations are
    alive, so one checkpoint around the whole decoder would only move its peak, not remove it.
    Uses transformers' own per-layer hook, active only in training mode with gradients on.
    """
    recompute = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    for layer in whisper_core(model).model.decoder.layers:
        if not layer.gradient_checkpointing:  # already on with --gradient_checkpointing
            layer.gradient_checkpointing = True
            layer._gradient_checkpointing_func = recompute


class PreferenceWhisper(nn.Module):
    """Wraps a Whisper model (plain or PEFT) and returns per-sequence label log-probs.

    Kept as a module, not a function, so DistributedDataParallel wraps the whole preference
    forward and synchronises gradients as for any model.

    forward(...) returns a dict of [B] tensors: `chosen_logps`, `chosen_tokens`, `rejected_logps`,
    `rejected_tokens` (sums of scored token log-probs and counts of scored tokens), and
    `chosen_odds_logps`, `chosen_odds_tokens`: the chosen's over `chosen_odds_labels` (the odds
    ratio's span with `--rejected_scope diverging`; without it, the same as `chosen_*`). Both
    chosen sums come from the same per-token log-probs: one decoder pass, whichever the mode.
    """

    def __init__(
        self,
        model: nn.Module,
        mode: str = "packed",
        freeze_encoder: bool = False,
        logps_chunk_size: int = 256,
        encoder_cache: EncoderCache | None = None,
        checkpoint_decoder: bool = False,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if checkpoint_decoder and mode == "packed":
            checkpoint_decoder_layers(model)
        self.model = model
        self.mode = mode
        self.freeze_encoder = freeze_encoder
        self.logps_chunk_size = logps_chunk_size
        self.encoder_cache = encoder_cache
        # Computed once: the encoder is frozen whenever the cache is used, so its weights never change.
        self._encoder_fingerprint = encoder_fingerprint(model) if encoder_cache is not None else None

    # Trainer and PEFT look for these on the model they are given.
    @property
    def config(self):
        return whisper_core(self.model).config

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """What Trainer calls for `--gradient_checkpointing True` (transformers 5), passed to the Whisper inside.

        Reentrant checkpointing (`use_reentrant: true`) gives gradients only to layers whose inputs
        require them, which a frozen base model's embeddings do not: as PEFT does, their outputs are
        then made to require gradients, or LoRA inside checkpointed layers would get none.
        """
        core = whisper_core(self.model)
        core.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            every_n_layers=every_n_layers,
            offload=offload,
        )
        if (activation_checkpointing_kwargs or {}).get("use_reentrant"):
            core.enable_input_require_grads()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        """The older name, with any keyword transformers adds to it (`every_n_layers`, `offload`)."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def forward(
        self,
        input_features: torch.Tensor,
        chosen_input_ids: torch.Tensor,
        chosen_labels: torch.Tensor,
        rejected_input_ids: torch.Tensor,
        rejected_labels: torch.Tensor,
        example_index: torch.Tensor | None = None,
        chosen_odds_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """`chosen_odds_labels` [B, Lc] must score a subset of the positions `chosen_labels` scores
        (the collator's diverging scope does): the log-probs are computed for `chosen_labels`."""
        # The collator yields float32 features; a model loaded in bf16/fp16 expects its own dtype.
        input_features = input_features.to(whisper_core(self.model).model.encoder.conv1.weight.dtype)
        if self.mode == "naive":
            chosen = self._full_model_logps(input_features, chosen_input_ids, chosen_labels)
            rejected = self._full_model_logps(input_features, rejected_input_ids, rejected_labels)
        elif self.mode == "concat":
            chosen, rejected = self._concat_logps(
                input_features, chosen_input_ids, chosen_labels, rejected_input_ids, rejected_labels
            )
        else:
            chosen, rejected = self._packed_logps(
                input_features, chosen_input_ids, chosen_labels, rejected_input_ids, rejected_labels, example_index
            )
        odds_labels = chosen_labels if chosen_odds_labels is None else chosen_odds_labels
        sums = {
            "chosen": sequence_logps(chosen, chosen_labels),
            "chosen_odds": sequence_logps(chosen, odds_labels),
            "rejected": sequence_logps(rejected, rejected_labels),
        }
        out = {}
        for name, (logps, tokens) in sums.items():
            out[f"{name}_logps"], out[f"{name}_tokens"] = logps, tokens
        return out

    def encode(self, input_features: torch.Tensor, example_index: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output [B, frames, d]; under no_grad and from the cache when the encoder is frozen.

        `example_index` [B] holds each row's `audio_key` (the dataset's `index`), so the cache
        serves an output only for the same audio through the same encoder; training and
        evaluation (train and eval mode) keep separate entries.
        """
        encoder = whisper_core(self.model).model.encoder
        if not self.freeze_encoder:
            return encoder(input_features).last_hidden_state
        if self.encoder_cache is not None and example_index is not None:
            split = "train" if self.training else "eval"
            return self.encoder_cache.get_or_compute(
                self._encoder_fingerprint, example_index, input_features, encoder, split
            )
        with torch.no_grad():
            return encoder(input_features).last_hidden_state

    # Each mode returns the per-token label log-probs [B, L] of the chosen and the rejected.

    def _full_model_logps(self, input_features, input_ids, labels):
        logits = self.model(input_features=input_features, decoder_input_ids=input_ids).logits
        return logits_token_logps(logits, labels)

    def _concat_logps(self, input_features, chosen_ids, chosen_labels, rejected_ids, rejected_labels):
        core = whisper_core(self.model)
        batch = input_features.shape[0]
        hidden = self.encode(input_features)
        pad_id = core.config.pad_token_id
        length = max(chosen_ids.shape[1], rejected_ids.shape[1])
        ids = torch.cat([_pad_to(chosen_ids, length, pad_id), _pad_to(rejected_ids, length, pad_id)])
        labels = torch.cat(
            [_pad_to(chosen_labels, length, IGNORE_INDEX), _pad_to(rejected_labels, length, IGNORE_INDEX)]
        )
        out = core.model.decoder(input_ids=ids, encoder_hidden_states=torch.cat([hidden, hidden]), use_cache=False)
        logits = core.proj_out(out.last_hidden_state)
        token_logps = logits_token_logps(logits, labels)
        return token_logps[:batch, : chosen_ids.shape[1]], token_logps[batch:, : rejected_ids.shape[1]]

    def _packed_logps(self, input_features, chosen_ids, chosen_labels, rejected_ids, rejected_labels, example_index):
        core = whisper_core(self.model)
        batch, chosen_len = chosen_ids.shape
        rejected_len = rejected_ids.shape[1]
        hidden = self.encode(input_features, example_index)
        ids = torch.cat([chosen_ids, rejected_ids], dim=1)
        positions = torch.cat(
            [torch.arange(chosen_len, device=ids.device), torch.arange(rejected_len, device=ids.device)]
        ).expand(batch, -1)
        # Eager attention adds the mask to its scores: in the weights' dtype, or a bf16/fp16 model's
        # scores would be promoted to fp32 and no longer match its value projections.
        eager = core.config._attn_implementation == "eager"
        mask = packed_attention_mask(chosen_len, rejected_len, batch, ids.device, core.dtype if eager else None)
        out = core.model.decoder(
            input_ids=ids, attention_mask=mask, position_ids=positions, encoder_hidden_states=hidden, use_cache=False
        )
        labels = torch.cat([chosen_labels, rejected_labels], dim=1)
        token_logps = chunked_token_logps(
            out.last_hidden_state, core.get_output_embeddings().weight, labels, self.logps_chunk_size
        )
        return token_logps[:, :chosen_len], token_logps[:, chosen_len:]


def _pad_to(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return nn.functional.pad(tensor, (0, length - tensor.shape[1]), value=value)
