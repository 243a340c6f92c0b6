"""make-pairs: valid preference rows from a model's mistakes, resume, negatives, corruption."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rlhf_asr import pairs
from rlhf_asr.commands import cli
from rlhf_asr.data.manifest import AsrExample, read_preference_manifest
from rlhf_asr.evaluation.normalize import normalize_text
from rlhf_asr.evaluation.repetition import has_repetition_loop
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.model.loading import load_for_inference
from rlhf_asr.pairs import mine_pairs
from rlhf_asr.text_corruption import corrupt_text, loop_text
from whisper_fixtures import make_tiny_whisper_dir, write_tone

TEXTS = ["the cat sat on the mat", "hello world", "good morning everyone", "see you tomorrow"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    model_dir = make_tiny_whisper_dir(root)
    rows = []
    for i, text in enumerate(TEXTS):
        write_tone(root / "wavs" / f"a{i}.wav", 1.0, 300 + 100 * i, seed=i)
        rows.append({"audio": {"path": f"wavs/a{i}.wav"}, "duration": 1.0, "sentence": text})
    (root / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model, processor = load_for_inference(model_dir)
    return root, model_dir, model, processor


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mined_rows_are_valid_training_rows(setup, tmp_path):
    root, _, model, processor = setup
    output = root / "mined.jsonl"  # beside the audio: paths stay relative
    summary = mine_pairs(
        model,
        processor,
        root / "asr.jsonl",
        output,
        num_candidates=3,
        batch_size=3,
        resume=False,
        model_name="tiny-random",
    )
    assert summary["written"] == summary["mined"] == 4 and summary["skipped_correct"] == 0
    rows = _rows(output)
    assert [r["chosen"] for r in rows] == TEXTS
    for row in rows:
        assert row["rejected"] != row["chosen"] and row["rejected_wer"] > 0
        assert row["rejected_by"] == "tiny-random" and row["language"] == "en"
        assert row["audio"]["path"].startswith("wavs/")
    report = read_preference_manifest(output)  # the training reader accepts every row
    assert len(report.examples) == 4 and not report.skipped
    elsewhere = tmp_path / "out" / "pairs.jsonl"
    mine_pairs(model, processor, root / "asr.jsonl", elsewhere, num_candidates=2)
    assert all(Path(r["audio"]["path"]).is_absolute() for r in _rows(elsewhere))


def test_loop_pairs_add_one_loop_row_per_speech_clip(setup, tmp_path):
    root, model_dir, model, processor = setup
    output = tmp_path / "loops.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2, loop_pairs=True)
    rows = _rows(output)
    loops = [r for r in rows if r["kind"] == "loop"]
    assert summary["loop"] == len(loops) == len(TEXTS) and summary["written"] == len(rows) == summary["mined"] + 4
    assert summary["loops"] == sum(bool(r.get("rejected_loop")) for r in rows if r["kind"] != "loop")
    for row in loops:
        assert has_repetition_loop(row["rejected"], row["chosen"]) and row["rejected_by"] == "loop"
        assert row["rejected_wer"] > 0 and row["chosen"] in TEXTS
    assert len(read_preference_manifest(output).examples) == len(rows)
    assert cli.main(["make-pairs", "--model", str(model_dir), "--data", str(root / "asr.jsonl"), "--output",
                     str(tmp_path / "cli.jsonl"), "--num_candidates", "2", "--loop_pairs"]) == 0  # fmt: skip
    assert sum(r["kind"] == "loop" for r in _rows(tmp_path / "cli.jsonl")) == len(TEXTS)


def test_resume_skips_done_rows_and_repairs_a_torn_line(setup, tmp_path):
    root, _, model, processor = setup
    output = tmp_path / "pairs.jsonl"
    first = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert first["written"] == 4
    again = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert again["written"] == 0 and again["already_done"] == 4
    assert len(_rows(output)) == 4

    # Simulate a run killed mid-write: the last row and its progress entry half written.
    lines = output.read_text().splitlines(keepends=True)
    output.write_text("".join(lines[:3]) + lines[3][:20])
    progress = output.with_name(output.name + ".progress")
    progress_lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(progress_lines[:3]))
    resumed = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert resumed["written"] == 1 and resumed["already_done"] == 3
    rows = _rows(output)
    assert [r["source"] for r in rows] == [f"asr.jsonl:{i}" for i in range(1, 5)]


def _always_right(monkeypatch):
    """Make the 'model' transcribe every utterance perfectly (3 identical candidates)."""
    texts = iter(TEXTS)

    def fake_decode(model, processor, hidden, prefixes, **options):
        return [[Candidate(next(texts), -0.1)] * 3 for _ in range(hidden.shape[0])]

    monkeypatch.setattr(pairs, "decode_encoded", fake_decode)


def test_correct_utterances_are_skipped_and_remembered(setup, tmp_path, monkeypatch):
    root, _, model, processor = setup
    _always_right(monkeypatch)
    output = tmp_path / "pairs.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=3)
    assert summary["skipped_correct"] == 4 and summary["written"] == 0
    assert output.read_text() == ""
    # resumed: nothing is decoded again (fake_decode would run out of texts and fail)
    assert mine_pairs(model, processor, root / "asr.jsonl", output)["already_done"] == 4


def test_corrupt_correct_builds_a_rejected(setup, tmp_path, monkeypatch):
    root, _, model, processor = setup
    _always_right(monkeypatch)
    output = tmp_path / "pairs.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=3, corrupt_correct=True, seed=3)
    assert summary["corrupted"] == summary["written"] == 4
    for row in _rows(output):
        assert normalize_text(row["rejected"]) != normalize_text(row["chosen"])
        assert row["rejected_by"] == "corruption" and row["rejected_wer"] > 0
    assert len(read_preference_manifest(output).examples) == 4


def _example(text: str) -> AsrExample:
    return AsrExample(Path("/data/a.wav"), 1.0, text, "en", None, "x.jsonl:1")


@pytest.mark.parametrize(("negative", "expected"), [("hardest", "the bat sat"), ("worst", "a b c d e")])
def test_negative_choice(negative, expected):
    miner = pairs._Miner(object(), random.Random(0), negative, False, "m", Path("/out"), {"words": [], "chars": []})
    candidates = [
        Candidate("The cat sat.", -0.5),  # correct after normalisation: never a negative
        Candidate("the bat sat", -1.0),
        Candidate("", -0.1),  # empty output: not usable
        Candidate("a b c d e", -3.0),
    ]
    row, status = miner.pair(_example("the cat sat"), "en", candidates)
    assert status == "mined" and row["rejected"] == expected


def test_only_correct_or_empty_candidates():
    miner = pairs._Miner(object(), random.Random(0), "hardest", False, "m", Path("/out"), {"words": [], "chars": []})
    assert miner.pair(_example("hi there"), "en", [Candidate("Hi, there!", -1.0)]) == (None, "skipped_correct")
    assert miner.pair(_example("hi there"), "en", [Candidate("", -1.0)]) == (None, "skipped_empty")


def test_corrupt_text_words_and_characters():
    vocabulary = {"words": ["dog", "ran", "away"], "chars": list("天气很好")}
    rng = random.Random(0)
    for _ in range(20):
        english = corrupt_text("the cat sat on the mat", "en", rng, vocabulary)
        assert normalize_text(english) != "the cat sat on the mat"
        chinese = corrupt_text("今天，天气很好。", "zh", rng, vocabulary)
        assert normalize_text(chinese, "zh") != normalize_text("今天，天气很好。", "zh")
        assert "，" in chinese and chinese.endswith("。")  # punctuation untouched
    seeded = [corrupt_text("one small step", "en", random.Random(7), vocabulary) for _ in range(2)]
    assert seeded[0] == seeded[1]
    # nothing else to draw from: falls back to repeating a word
    assert corrupt_text("hello", "en", random.Random(0), {"words": ["hello"], "chars": []}) == "hello hello"


def test_loop_text_is_a_loop_that_starts_inside_the_reference():
    rng = random.Random(0)
    seen = set()
    for text, language in [
        ("An exotic journey in downtown Newark.", "en"),
        ("I am here", "en"),
        ("今天，天气很好。", "zh"),
    ]:
        for _ in range(30):
            looped = loop_text(text, language, rng)
            assert has_repetition_loop(looped, text), looped
            seen.add(looped)
    assert "An an an an an an" in seen  # a sentence's first word repeats mid-sentence, lower-cased
    assert any(s.startswith("An exotic journey in downtown Newark Newark Newark") for s in seen)  # names keep case
    assert "I I I I I I" in seen
    assert "今天，天气气气气气气" in seen  # the text before the loop is kept as written; punctuation never loops
    assert loop_text("one small step", "en", random.Random(3)) == loop_text("one small step", "en", random.Random(3))
    with pytest.raises(ValueError):
        loop_text("...", "en", rng)


def test_a_thai_loop_repeats_characters_as_written_marks_included():
    """Thai is edited by characters, and its vowel and tone marks are characters of the text: the
    looped n-gram is a stretch of the reference as written. With marks skipped (the rule corruption
    had before `data/text_rules.is_letter`), "สวัสดี" looped as "สวส", a syllable nobody wrote."""
    from rlhf_asr.text_corruption import LOOP_REPEATS

    text = "สวัสดีครับ"
    as_written = {text[:start] + text[start:stop] * LOOP_REPEATS for start in range(len(text))
                  for stop in range(start + 1, len(text) + 1)}  # fmt: skip
    for seed in range(20):
        looped = loop_text(text, "th", random.Random(seed))
        assert has_repetition_loop(looped, text) and looped in as_written, looped


def test_sampling_strategy_and_command(setup, tmp_path, capsys):
    root, model_dir, model, processor = setup
    output = tmp_path / "sampled.jsonl"
    summary = mine_pairs(
        model, processor, root / "asr.jsonl", output, num_candidates=2, strategy="sample", negative="random", seed=1
    )
    assert summary["written"] == 4
    code = cli.main(
        [
            "make-pairs",
            "--model",
            str(model_dir),
            "--data",
            str(root / "asr.jsonl"),
            "--output",
            str(tmp_path / "cli.jsonl"),
            "--num_candidates",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "4 pairs written" in capsys.readouterr().err  # a log line (stderr)
    assert len(_rows(tmp_path / "cli.jsonl")) == 4


def test_bad_options_are_user_errors(setup, tmp_path):
    root, _, model, processor = setup
    from rlhf_asr.errors import UserInputError

    with pytest.raises(UserInputError, match="strategy"):
        mine_pairs(model, processor, root / "asr.jsonl", tmp_path / "p.jsonl", strategy="greedy")
    with pytest.raises(UserInputError, match="negative"):
        mine_pairs(model, processor, root / "asr.jsonl", tmp_path / "p.jsonl", negative="easiest")


def _trains(path: Path, processor) -> list:
    """The rows of a mined manifest as the training dataset takes them (UserInputError if any cannot)."""
    from rlhf_asr.data.dataset import PreferenceDataset
    from rlhf_asr.data.tokens import TranscriptEncoder

    examples = read_preference_manifest(path).examples
    return PreferenceDataset(examples, None, TranscriptEncoder(processor.tokenizer), default_language="en").pairs


@pytest.mark.parametrize("name", ["tiny.en", "base"])
@pytest.mark.parametrize("generation", [{"max_length": 448}, {"max_new_tokens": 448}])
def test_a_loop_decoded_to_the_limit_is_written_so_that_it_trains(name, generation, tmp_path):
    """A repetition loop runs to decoding's length limit without <|endoftext|>. make-pairs wrote it
    as is, and its own `train` refused the row: "transcript is 449 tokens, Whisper's limit is 448"."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, TranscriptEncoder
    from rlhf_asr.inference.decode import _length_limit
    from whisper_fixtures import tiny_processor

    processor = tiny_processor(name)
    encoder = TranscriptEncoder(processor.tokenizer)
    prompt_len = len(encoder.prefix("en"))
    core = SimpleNamespace(
        generation_config=GenerationConfig(**generation), config=SimpleNamespace(max_target_positions=MAX_TARGET_TOKENS)
    )
    limit = _length_limit(core, prompt_len)
    generated = limit["max_new_tokens"] if "max_new_tokens" in limit else limit["max_length"] - prompt_len
    loop = " ".join(["the"] * generated)  # what the decoder returns when cut off: `generated` text tokens
    assert len(encoder.text_ids(loop)) == generated
    miner = pairs._Miner(
        processor, random.Random(0), "hardest", False, "m", tmp_path, {"words": [], "chars": []}, encoder=encoder
    )
    write_tone(tmp_path / "a.wav", 1.0)
    example = AsrExample(tmp_path / "a.wav", 1.0, "the cat sat", "en", None, "asr.jsonl:1")
    row, status = miner.pair(example, "en", [Candidate(loop, -0.1)])
    assert status == "mined" and row["rejected"] == loop and "rejected_truncated" not in row  # written whole
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    ((_, rejected),) = _trains(tmp_path / "pairs.jsonl", processor)
    assert len(rejected.ids) == MAX_TARGET_TOKENS  # prompt + text + <|endoftext|>, exactly the limit


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_a_loop_over_the_limit_is_cut_to_fit_and_counted(name, tmp_path, rlhf_log):
    from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, TranscriptEncoder, max_text_tokens
    from whisper_fixtures import tiny_processor

    processor = tiny_processor(name)
    encoder = TranscriptEncoder(processor.tokenizer)
    language = "en" if encoder.multilingual else None
    limit = max_text_tokens(len(encoder.prefix(language)))
    loop = " ".join(["the"] * (limit + 3))  # three tokens over: re-tokenised output of an old decoding limit
    assert len(encoder.encode(loop, language).ids) == MAX_TARGET_TOKENS + 3
    miner = pairs._Miner(
        processor, random.Random(0), "hardest", False, "m", tmp_path, {"words": [], "chars": []}, encoder=encoder
    )
    write_tone(tmp_path / "a.wav", 1.0)
    example = AsrExample(tmp_path / "a.wav", 1.0, "the cat sat", "en", None, "asr.jsonl:1")
    row, status = miner.pair(example, "en", [Candidate(loop, -0.1)])
    assert status == "mined" and row["rejected_truncated"] and loop.startswith(row["rejected"])
    assert len(encoder.encode(row["rejected"], language).ids) == MAX_TARGET_TOKENS
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    assert len(_trains(tmp_path / "pairs.jsonl", processor)) == 1
    # a reference that cannot train skips the utterance instead of writing a row train refuses
    long_reference = AsrExample(tmp_path / "a.wav", 1.0, loop, "en", None, "asr.jsonl:2")
    assert miner.pair(long_reference, "en", [Candidate("the cat", -0.1)]) == (None, "skipped_reference")
    # both are warnings naming the manifest row (logged, so --quiet keeps them and the progress bar stays whole)
    assert [
        (r.levelname, r.getMessage().split(":")[0] + ":" + r.getMessage().split(":")[1]) for r in rlhf_log.records
    ] == [("WARNING", "asr.jsonl:1"), ("WARNING", "asr.jsonl:2")]
