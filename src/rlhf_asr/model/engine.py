"""The preference forward pass: per-sequence log-probs of K transcripts of one audio.

A pair (chosen, rejected) is K = 2; a K-best (minimum-WER training, several rejected per audio)
is any K. Three ways to compute the same numbers (they are compared in the tests and in
`rlhf-asr bench`):

- "naive": the whole model once per transcript (encoder K times, full logits K times).
- "concat": encoder once, its output copied K times, decoder on the K transcripts stacked along
  the batch, full logits (what earlier ORPO-for-Whisper code did for K = 2).
- "packed" (this project's engine): encoder once; each audio's K transcripts are packed side by side along the
  decoder's time axis, with a block-causal mask and positions restarting at 0 in each block
  (model/packing.py, which also says what packing costs). One decoder pass, the audio's
  cross-attention keys and values computed once and shared, no copy of the encoder output, and
  the label log-probs taken chunk by chunk from the hidden states, never as a [B, T, vocab] tensor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

from rlhf_asr.loss.logps import IGNORE_INDEX, chunked_token_logps, logits_token_logps, sequence_logps
from rlhf_asr.model.core import whisper_core
from rlhf_asr.model.encoder_cache import EncoderCache, encoder_fingerprint
from rlhf_asr.model.packing import block_causal_mask, block_positions, candidate_blocks
from rlhf_asr.model.packing import packed_attention_mask as packed_attention_mask  # the K = 2 mask, kept here

MODES = ("packed", "naive", "concat")


@dataclass(frozen=True)
class CandidateLogps:
    """What `PreferenceWhisper.forward_candidates` returns: per audio and candidate slot.

    An absent slot (a ragged K-best: an audio with fewer candidates than the batch's K) has
    `tokens` 0 and `logps` exactly 0, with no gradient: mask it with `present`, or a mean
    log-prob (`logps / tokens`) divides by zero there.
    """

    logps: torch.Tensor  # [B, K] float32, summed log-probs of each candidate's scored label tokens
    tokens: torch.Tensor  # [B, K] long, number of scored tokens (0 for an absent slot)

    @property
    def present(self) -> torch.Tensor:
        return self.tokens > 0  # [B, K] bool


def checkpoint_decoder_layers(model: nn.Module) -> None:
    """Recompute each decoder layer in the backward pass instead of keeping its activations.

    The packed decoder runs on twice sft's tokens, and its per-token activations (self- and
    cross-attention, the MLP, LoRA's inputs) are what keeps `packed` above `sft` per pair. The
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
    forward_candidates(...) scores K transcripts per audio the same way ([B, K] `CandidateLogps`);
    the pair is its K = 2 case, through the same per-mode code.
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
        chosen_input_ids: torch.Tensor | None = None,
        chosen_labels: torch.Tensor | None = None,
        rejected_input_ids: torch.Tensor | None = None,
        rejected_labels: torch.Tensor | None = None,
        example_index: torch.Tensor | None = None,
        chosen_odds_labels: torch.Tensor | None = None,
        candidate_input_ids: torch.Tensor | None = None,
        candidate_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The pair: K = 2 blocks, chosen then rejected, each as long as the collator padded it.

        `chosen_odds_labels` [B, Lc] must score a subset of the positions `chosen_labels` scores
        (the collator's diverging scope does): the log-probs are computed for `chosen_labels`.
        A candidate batch (`candidate_input_ids`, `candidate_labels` [B, K, L], CandidateCollator's)
        goes to `forward_candidates` instead, so a distributed trainer reaches it through this
        forward: {"candidate_logps": [B, K], "candidate_tokens": [B, K]}.
        """
        if candidate_input_ids is not None:
            scored = self.forward_candidates(input_features, candidate_input_ids, candidate_labels, example_index)
            return {"candidate_logps": scored.logps, "candidate_tokens": scored.tokens}
        chosen, rejected = self._token_logps(
            input_features, [chosen_input_ids, rejected_input_ids], [chosen_labels, rejected_labels], example_index
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

    def forward_candidates(
        self,
        input_features: torch.Tensor,
        candidate_input_ids: torch.Tensor,
        candidate_labels: torch.Tensor,
        example_index: torch.Tensor | None = None,
    ) -> CandidateLogps:
        """Summed label log-probs of K candidate transcripts per audio, in this engine's mode.

        Args:
            input_features: [B, n_mels, frames].
            candidate_input_ids: [B, K, L] decoder inputs.
            candidate_labels: [B, K, L], -100 where not scored; an absent slot is -100 throughout.
            example_index: [B] audio keys for the encoder cache, as in `forward`.
        The argument names are `CandidateCollator`'s batch keys: `forward_candidates(**batch)`.

        One padded [B, K, L] tensor rather than K tensors: it is what a collator can hand a
        Trainer (a dict of tensors, moved and split by the usual code), and the engine trims
        each slot back to its own length (`candidate_blocks`): a slot costs its own longest
        candidate, not the batch's longest.
        A method beside `forward`, which keeps the pair API: under DistributedDataParallel a call
        that bypasses the wrapper's `forward` skips its gradient-synchronisation set-up, so a
        distributed trainer must reach this through the wrapper (e.g. a forward that dispatches here).
        """
        ids, label_blocks = candidate_blocks(candidate_input_ids, candidate_labels)
        token_logps = self._token_logps(input_features, ids, label_blocks, example_index)
        sums = [sequence_logps(logps, block) for logps, block in zip(token_logps, label_blocks)]
        return CandidateLogps(
            logps=torch.stack([logps for logps, _ in sums], dim=1), tokens=torch.stack([n for _, n in sums], dim=1)
        )

    def _token_logps(
        self,
        input_features: torch.Tensor,
        ids: list[torch.Tensor],
        labels: list[torch.Tensor],
        example_index: torch.Tensor | None,
    ) -> list[torch.Tensor]:
        """Per-token label log-probs [B, L_k] of each of K blocks ([B, L_k] ids and labels), by mode."""
        # The collator yields float32 features; a model loaded in bf16/fp16 expects its own dtype.
        input_features = input_features.to(whisper_core(self.model).model.encoder.conv1.weight.dtype)
        if self.mode == "naive":
            return [self._full_model_logps(input_features, i, block) for i, block in zip(ids, labels)]
        if self.mode == "concat":
            return self._concat_logps(input_features, ids, labels)
        return self._packed_logps(input_features, ids, labels, example_index)

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

    # Each mode returns the per-token label log-probs [B, L_k] of each of the K blocks.

    def _full_model_logps(self, input_features, input_ids, labels):
        logits = self.model(input_features=input_features, decoder_input_ids=input_ids).logits
        return logits_token_logps(logits, labels)

    def _concat_logps(self, input_features, ids, labels):
        core = whisper_core(self.model)
        batch = input_features.shape[0]
        hidden = self.encode(input_features)
        pad_id = core.config.pad_token_id
        length = max(block.shape[1] for block in ids)
        stacked_ids = torch.cat([_pad_to(block, length, pad_id) for block in ids])  # [K*B, length]
        stacked_labels = torch.cat([_pad_to(block, length, IGNORE_INDEX) for block in labels])  # [K*B, length]
        out = core.model.decoder(
            input_ids=stacked_ids, encoder_hidden_states=torch.cat([hidden] * len(ids)), use_cache=False
        )
        logits = core.proj_out(out.last_hidden_state)
        token_logps = logits_token_logps(logits, stacked_labels)  # [K*B, length]
        return [token_logps[k * batch : (k + 1) * batch, : block.shape[1]] for k, block in enumerate(ids)]

    def _packed_logps(self, input_features, ids, labels, example_index):
        core = whisper_core(self.model)
        batch = input_features.shape[0]
        lengths = [block.shape[1] for block in ids]
        hidden = self.encode(input_features, example_index)
        device = ids[0].device
        # Eager attention adds the mask to its scores: in the weights' dtype, or a bf16/fp16 model's
        # scores would be promoted to fp32 and no longer match its value projections.
        eager = core.config._attn_implementation == "eager"
        out = core.model.decoder(
            input_ids=torch.cat(ids, dim=1),  # [B, T], T = sum(lengths)
            attention_mask=block_causal_mask(lengths, batch, device, core.dtype if eager else None),
            position_ids=block_positions(lengths, batch, device),
            encoder_hidden_states=hidden,
            use_cache=False,
        )
        token_logps = chunked_token_logps(
            out.last_hidden_state, core.get_output_embeddings().weight, torch.cat(labels, dim=1), self.logps_chunk_size
        )  # [B, T]
        return list(token_logps.split(lengths, dim=1))


def _pad_to(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return nn.functional.pad(tensor, (0, length - tensor.shape[1]), value=value)
