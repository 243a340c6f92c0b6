"""Normalisation, WER/CER and `rlhf-asr evaluate` (decoding itself: test_decode.py)."""

from __future__ import annotations

import csv
import json

import pytest

from rlhf_asr.commands import cli
from rlhf_asr.evaluation.evaluate import evaluate_manifest, manifest_kind
from rlhf_asr.evaluation.metrics import error_rates, score_utterance
from rlhf_asr.evaluation.normalize import normalize_text, uses_cer
from rlhf_asr.evaluation.repetition import has_repetition_loop
from rlhf_asr.inference.decode import sequence_logprobs
from rlhf_asr.model.loading import load_for_inference
from whisper_fixtures import make_tiny_whisper_dir, write_tone

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
    expected = {
        "wer",
        "cer",
        "preference_accuracy",
        "num_utterances",
        "audio_seconds",
        "decode_seconds",
        "rtf",
        "model",
        "language",
        "num_beams",
    }
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
    code = cli.main(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--data",
            str(root / "asr.jsonl"),
            "--output",
            str(output),
            "--device",
            "cpu",
        ]
    )
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
    code = cli.main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "missing"),
            "--data",
            str(root / "asr.jsonl"),
            "--output",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2
    assert "model path does not exist" in capsys.readouterr().err


def test_transcribe_decodes_files_over_30_seconds_long_form(data_dir, tmp_path, capsys):
    root, model_dir = data_dir
    long = write_tone(tmp_path / "long.wav", seconds=31.5, seed=7)
    short = root / "a0.wav"
    options = ["--model", str(model_dir), "--device", "cpu", "--temperature", "0"]
    assert cli.main(["transcribe", str(short), str(long), *options]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2
    assert "1 file(s) over 30 s: long-form decoding" in captured.err  # no longer cut to its first 30 s


# --- no speech -----------------------------------------------------------------------------


def _words(text: str) -> int:
    return sum(any(c.isalnum() for c in token) for token in normalize_text(text, "en").split())


def _fast_model(model_dir):
    """The tiny random model writes up to its token limit; a few tokens are enough for these tests."""
    model, processor = load_for_inference(model_dir)
    model.generation_config.max_new_tokens = 6
    return model, processor


@pytest.mark.parametrize("kind", ["asr", "preference"])
def test_evaluate_counts_hallucinations_on_no_speech_rows(data_dir, tmp_path, kind):
    """Speech rows give WER; no-speech rows ("" reference) give the hallucination rate; both counted."""
    root, model_dir = data_dir
    references, rows = ["the cat sat on the mat", "", "hello world", ""], []
    for i, text in enumerate(references):
        audio = write_tone(tmp_path / f"n{i}.wav", 1.0, 250 + 50 * i, seed=10 + i)
        row = {"audio": {"path": str(audio)}, "duration": 1.0}
        row.update({"chosen": text, "rejected": "you said this"} if kind == "preference" else {"sentence": text})
        rows.append(row)
    manifest = tmp_path / "mixed.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = evaluate_manifest(*_fast_model(model_dir), manifest, batch_size=4, output_dir=tmp_path)
    assert (metrics["rows_speech"], metrics["rows_no_speech"], metrics["num_utterances"]) == (2, 2, 4)
    table = list(csv.DictReader(open(tmp_path / "utterances.csv", encoding="utf-8")))
    assert [r["kind"] for r in table] == ["speech", "no_speech", "speech", "no_speech"]
    hyps = [r["hypothesis"] for r in table]
    assert all(hyps), "the random model writes something on every clip"
    speech = error_rates([references[0], references[2]], [hyps[0], hyps[2]], "en")
    assert metrics["wer"] == pytest.approx(speech["wer"]) and metrics["reference_words"] == 8
    assert metrics["hallucination_rate"] == pytest.approx(sum(_words(hyps[i]) > 0 for i in (1, 3)) / 2)
    assert metrics["insertion_rate"] == pytest.approx(sum(u["word_insertions"] for u in speech["utterances"]) / 8)
    loops = [has_repetition_loop(h, r or None) for h, r in zip(hyps, references)]
    assert metrics["repetition_rate"] == pytest.approx(sum(loops) / 4)
    assert [r["loop"] for r in table] == [str(loop) for loop in loops]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("hallucination_rate", "insertion_rate", "repetition_rate", "rows_speech", "rows_no_speech"):
        assert saved[key] == metrics[key], key


def test_evaluate_speech_only_has_null_hallucination_rate(data_dir, tmp_path):
    root, model_dir = data_dir
    metrics = evaluate_manifest(*_fast_model(model_dir), root / "asr.jsonl", max_rows=2, output_dir=tmp_path)
    assert metrics["hallucination_rate"] is None and (metrics["rows_speech"], metrics["rows_no_speech"]) == (2, 0)
    assert json.loads((tmp_path / "metrics.json").read_text())["hallucination_rate"] is None


def test_evaluate_table_shows_the_hallucination_metrics():
    from rlhf_asr.commands.evaluate import format_table

    metrics = {"num_utterances": 5, "wer": 0.1, "cer": 0.05, "preference_accuracy": None, "audio_seconds": 5.0}
    metrics.update(rtf=0.1, rows_speech=3, rows_no_speech=2, hallucination_rate=0.5, insertion_rate=0.02)
    metrics.update(nonspeech_output_rate=1.0)
    lines = format_table({**metrics, "repetition_rate": 0.2}).splitlines()
    row = "{:<22}  {}".format
    expected = [("speech rows", 3), ("no-speech rows", 2), ("hallucination rate", "50.00%")]
    expected += [("non-speech output rate", "100.00%"), ("insertion rate", "2.00%"), ("repetition rate", "20.00%")]
    for name, value in expected:
        assert row(name, value) in lines, lines
    assert row("hallucination rate", "-") in format_table({**metrics, "hallucination_rate": None}).splitlines()
