"""make-pairs' three kinds of pairs: no-speech (any output rejected, chosen ""), speech with
repetition loops taken first, and speech padded with silence or noise; their sources and counts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile

from rlhf_asr.commands import cli
from rlhf_asr.commands.make_pairs import parse_args
from rlhf_asr.data.examples import AsrExample
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.model.loading import load_for_inference
from rlhf_asr.pairs import mine, mine_pairs
from rlhf_asr.pairs.choice import Miner
from rlhf_asr.pairs.items import mining_items
from whisper_fixtures import make_tiny_whisper_dir, write_tone

VOCABULARY = {"words": [], "chars": []}


def _miner(negative: str = "hardest") -> Miner:
    return Miner(object(), random.Random(0), negative, False, "m", Path("/out"), VOCABULARY)


def _example(text: str) -> AsrExample:
    return AsrExample(Path("/data/a.wav"), 1.0, text, "en", None, "x.jsonl:1")


def test_no_speech_rejects_the_most_probable_non_empty_output():
    candidates = [Candidate("", -0.1), Candidate(" you", -0.5), Candidate(" Thank you.", -0.3)]
    row, status = _miner().pair(_example(""), "en", candidates)
    assert status == "mined" and row["kind"] == "no_speech"
    assert (row["chosen"], row["rejected"], row["rejected_words"]) == ("", "Thank you.", 2)
    assert "rejected_wer" not in row and "rejected_loop" not in row
    row, _ = _miner().pair(_example(""), "en", [Candidate("you you you you", -0.9)])
    assert row["rejected_loop"]


def test_a_dot_on_no_speech_is_output_and_rejected_as_the_metrics_count_it():
    """One definition of silent (data/text_rules.is_silent): "." is output, so it is a rejected."""
    row, _ = _miner().pair(_example(""), "en", [Candidate("", -0.1), Candidate(" .", -0.2)])
    assert row["chosen"] == "" and row["rejected"] == "."


def test_a_silent_model_gives_no_no_speech_pair():
    assert _miner().pair(_example(""), "en", [Candidate("", -0.1), Candidate("  ", -0.2)]) == (None, "skipped_correct")


def test_a_loop_is_rejected_first_even_where_another_candidate_is_as_wrong_and_more_probable():
    candidates = [
        Candidate("the cat sat on the hat", -0.1),  # 1 error, most probable
        Candidate("the cat sat on the mat and and and", -2.0),  # a loop: 3 insertions
        Candidate("a b c d e f", -3.0),
    ]
    for negative in ("hardest", "worst", "random"):
        row, status = _miner(negative).pair(_example("the cat sat on the mat"), "en", candidates)
        assert status == "mined" and row["rejected"] == "the cat sat on the mat and and and" and row["rejected_loop"]
        assert row["kind"] == "speech"
    tie = [Candidate("go to", -0.1), Candidate("go go go", -0.5)]  # one error each from "go go"
    assert _miner().pair(_example("go go"), "en", tie)[0]["rejected"] == "go go go"  # the loop, not the likelier
    # a reference that itself repeats marks no candidate as a loop: the usual choice stands
    row, _ = _miner().pair(_example("no no no stop"), "en", [Candidate("no no no", -0.1), Candidate("a", -2.0)])
    assert row["rejected"] == "no no no" and "rejected_loop" not in row


def test_padded_rows_are_mined_as_speech_and_tagged():
    row, status = _miner().pair(_example("hello world"), "en", [Candidate("hello world you", -0.3)], "padded")
    assert status == "mined" and row["kind"] == "padded" and row["chosen"] == "hello world"


def test_non_speech_clips_take_the_manifests_most_common_language(tmp_path):
    rows = [AsrExample(Path("/a.wav"), 1.0, "hola", lang, None, f"m:{i}") for i, lang in enumerate(["es", "es", "fr"])]
    items, unreadable = mining_items(rows, tmp_path / "p.jsonl", generate=2)
    assert [item.example.language for item in items if item.kind == "no_speech"] == ["es", "es"]
    items, _ = mining_items([], tmp_path / "p.jsonl", generate=1)
    assert items[0].example.language is None  # nothing to go by: detected


# ---- end to end: the sources, counts, rows that train, resume ----


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    model_dir = make_tiny_whisper_dir(root)
    rows = []
    for i, text in enumerate(["the cat sat on the mat", "hello world", ""]):
        write_tone(root / "wavs" / f"a{i}.wav", 1.0, 300 + 100 * i, seed=i)
        rows.append({"audio": {"path": f"wavs/a{i}.wav"}, "duration": 1.0, "sentence": text, "language": "en"})
    (root / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model, processor = load_for_inference(model_dir)
    return root, model_dir, model, processor


@pytest.fixture
def hallucinating(monkeypatch):
    """Every clip gets the same two candidates: "you" (most probable) and a loop."""

    def fake_decode(model, processor, hidden, prefixes, **options):
        return [[Candidate("you", -0.2), Candidate("the the the", -1.0)] for _ in range(hidden.shape[0])]

    monkeypatch.setattr(mine, "decode_encoded", fake_decode)


def test_manifest_generated_directory_and_padded_clips_each_make_their_kind(setup, hallucinating, tmp_path):
    root, _, model, processor = setup
    mine = tmp_path / "mine"
    mine.mkdir()
    soundfile.write(mine / "rain.wav", 0.01 * np.random.default_rng(0).standard_normal(16000 * 40), 16000)  # 2 windows
    (mine / "readme.txt").write_text("not audio")
    output = root / "pairs.jsonl"
    options = dict(generate_nonspeech=3, nonspeech_dir=mine, pad_silence=2.0, seed=1, num_candidates=2)
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, resume=False, **options)
    assert (summary["speech"], summary["no_speech"], summary["padded"]) == (2, 1 + 3 + 2, 2)
    assert (
        summary["written"] == 10 and summary["nonspeech_unreadable"] == 1 and summary["loops"] == 4
    )  # speech and padded
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    by_source = {row["source"]: row for row in rows}
    assert by_source["asr.jsonl:3"]["chosen"] == "" and by_source["asr.jsonl:3"]["rejected"] == "you"
    assert by_source["asr.jsonl:1"]["rejected"] == "the the the"  # the loop, though less probable
    assert {by_source[f"generated:{i}"]["kind"] for i in range(3)} == {"no_speech"}
    assert by_source["nonspeech_dir:rain.wav#0"]["duration"] == by_source["nonspeech_dir:rain.wav#1"]["duration"] == 20
    for source in ("asr.jsonl:1+pad", "asr.jsonl:2+pad"):
        padded = by_source[source]
        assert padded["kind"] == "padded" and padded["duration"] == 3.0
        assert padded["audio"]["path"].startswith("pairs.nonspeech/padded/")
    report = read_preference_manifest(output)  # training reads every row, audio durations checked
    assert len(report.examples) == 10 and not report.skipped
    again = mine_pairs(model, processor, root / "asr.jsonl", output, **options)
    assert again["written"] == 0 and again["already_done"] == 10


def test_the_command_counts_each_kind(setup, hallucinating, tmp_path, rlhf_log):
    root, model_dir, _, _ = setup
    output = tmp_path / "cli.jsonl"
    argv = ["make-pairs", "--model", str(model_dir), "--data", str(root / "asr.jsonl"), "--output", str(output)]
    assert cli.main([*argv, "--generate_nonspeech", "2", "--pad_silence", "1", "--device", "cpu"]) == 0
    line = next(r.getMessage() for r in rlhf_log.records if "pairs written" in r.getMessage())
    assert "7 pairs written" in line and "(2 speech, 3 no_speech, 2 padded, 0 loop;" in line


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--pad_silence", "31"], "pad_silence"),
        (["--pad_silence", "nan"], "pad_silence"),
        (["--generate_nonspeech", "-1"], "generate_nonspeech"),
        (["--nonspeech_dir", "/no/such/folder"], "nonspeech_dir"),
    ],
)
def test_bad_nonspeech_options_are_one_line_errors_before_loading(extra, match):
    with pytest.raises(UserInputError, match=match):
        parse_args(["--model", "/no/model", "--data", "/no/data.jsonl", "--output", "p.jsonl", *extra])
