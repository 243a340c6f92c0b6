"""`studies/corpus.py`: the shipped sentence list, voices checked, the corpus split."""

from __future__ import annotations

import json
import re

import pytest

from rlhf_asr.errors import UserInputError
from rlhf_asr.studies import corpus as synth
from study_fixtures import needs_espeak


def test_clean_sentence_keeps_one_plain_sentence():
    assert synth.clean_sentence("Eloquence is logic\n   on fire.") == "Eloquence is logic on fire."
    for bad in (
        "Too short.",  # under 4 words
        "He said hello. Then he left the room.",  # two sentences
        "There are 10 kinds of people in the world.",  # digits
        "The NASA budget is not large enough.",  # acronym
        "Life is a game.\n\t\t-- Somebody Famous",  # attribution
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen.",
    ):
        assert synth.clean_sentence(bad) is None, bad


def test_shipped_sentences_are_clean_and_enough():
    sentences = synth.shipped_sentences()
    assert len(sentences) >= 500
    assert len(set(sentences)) == len(sentences)
    assert all(synth.clean_sentence(s) == s for s in sentences)


def test_load_sentences_is_seeded_and_distinct():
    first = synth.load_sentences(50, seed=3)
    assert first == synth.load_sentences(50, seed=3)
    assert first != synth.load_sentences(50, seed=4)
    assert len(set(first)) == 50 and set(first) <= set(synth.shipped_sentences())


def test_corpus_texts_do_not_depend_on_installed_fortunes(tmp_path, monkeypatch):
    """A machine with Debian's `fortunes` must get the same demo texts as one without."""
    folder = tmp_path / "fortunes"
    folder.mkdir()
    extra = [f"Installed fortune number {word} is here." for word in ("one", "two", "three", "four", "five")]
    (folder / "fortunes").write_text("\n%\n".join(extra * 200) + "\n")
    monkeypatch.setattr(synth, "FORTUNE_DIRS", (folder,), raising=False)
    with_fortunes = synth.load_sentences(300, seed=0)
    monkeypatch.setattr(synth, "FORTUNE_DIRS", (tmp_path / "missing",), raising=False)
    assert with_fortunes == synth.load_sentences(300, seed=0)
    assert not set(extra) & set(with_fortunes)


@needs_espeak
@pytest.mark.parametrize("voice", ["en-xx", "en-us+nosuchvariant"])
def test_a_voice_espeak_lacks_is_one_line_error_not_a_substitute(tmp_path, voice):
    # espeak-ng itself would speak en-xx as en-gb and drop an unknown variant, exit status 0.
    with pytest.raises(UserInputError, match=re.escape(repr(voice))) as error:
        synth.build_corpus(tmp_path, 2, 1, ["en-us", voice], [], [160])
    assert "\n" not in str(error.value) and not list(tmp_path.glob("*/*.wav"))


@needs_espeak
def test_corpus_split_keeps_held_out_texts_and_voices_apart(tmp_path):
    corpus = synth.build_corpus(
        tmp_path,
        num_train=10,
        num_test=4,
        train_voices=["en-us", "en-gb"],
        test_voices=["en-us+m3"],
        speeds=[150, 200],
        seed=1,
        workers=2,
    )
    train, test, test_voices = (corpus.splits[name] for name in ("train", "test", "test_voices"))
    assert (len(train), len(test), len(test_voices)) == (10, 4, 4)
    assert not {u.text for u in train} & {u.text for u in test}
    assert [u.text for u in test] == [u.text for u in test_voices]  # same held-out texts, new voices
    assert {u.voice for u in train} == {"en-us", "en-gb"} and {u.voice for u in test} <= {"en-us", "en-gb"}
    assert {u.voice for u in test_voices} == {"en-us+m3"}
    rows = [json.loads(line) for line in corpus.manifest("train").read_text().splitlines()]
    assert [row["sentence"] for row in rows] == [u.text for u in train]
    assert all((tmp_path / row["audio"]["path"]).is_file() and row["duration"] > 0.5 for row in rows)
    with pytest.raises(Exception, match="held-out voices"):
        synth.build_corpus(tmp_path / "bad", 2, 1, ["en-us"], ["en-us"], [150])
