"""Loop detection on known strings: Whisper's typical loops are caught, ordinary repeats are not."""

from __future__ import annotations

import pytest

from rlhf_asr.evaluation.repetition import has_repetition_loop, text_units


@pytest.mark.parametrize(
    "text",
    [
        "and and and",
        "and and and and and and and and and and and and",
        "Thank you. Thank you. Thank you.",
        "Thank you. thank you. THANK YOU. Thank you.",  # case and punctuation do not hide it
        "So we went home. I'm going to go to the store. I'm going to go to the store. "
        "I'm going to go to the store.",  # a 7-word n-gram after an ordinary start
        "and so on and so on and so on and so",  # cut off by the token limit mid-repeat
        "The, the, the, the end.",
        "谢谢观看谢谢观看谢谢观看",  # Chinese: characters, no spaces
        "ありがとうございました。ありがとうございました。ありがとうございました。",
        "字幕字幕字幕字幕",
    ],
)
def test_whisper_loops_are_caught(text):
    assert has_repetition_loop(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "you",
        "no no",
        "bye bye",
        "No, no. Bye bye.",
        "we had had enough of it",
        "It is what it is, and that is that.",
        "one two three one two three",  # two repeats of a 3-gram
        "哈哈哈",  # laughter: three characters are too short a stretch
        "我们明天去北京",
        "hahahaha",  # one word, not compared by characters
        "Mississippi",
    ],
)
def test_ordinary_text_is_not_a_loop(text):
    assert not has_repetition_loop(text)


def test_far_longer_than_the_reference_counts_without_exact_repeats():
    reference = "hello world"
    assert not has_repetition_loop("hello world", reference)
    assert not has_repetition_loop("hello there world and more", reference)  # 5 words <= 2 * 2 + 4
    assert has_repetition_loop("hello world and then we went to the market", reference)  # 9 > 8


def test_an_empty_reference_allows_a_short_hallucination_but_not_a_long_one():
    assert not has_repetition_loop("you", "")
    assert has_repetition_loop("I'm sorry I don't know what you are talking about", "")


def test_the_reference_script_decides_the_units():
    # A Chinese reference of 6 characters: a 30-character hypothesis is far longer (> 2 * 6 + 8).
    assert has_repetition_loop("我们明天去北京看看长城然后回家吃饭睡觉再去上海玩一玩吧好不好呀", "我们明天去北京")
    assert not has_repetition_loop("我们明天去北京", "我们明天去北京")


def test_units_are_words_or_characters():
    assert text_units("No, no. Bye-bye!") == ["no", "no", "byebye"]
    assert text_units("谢谢，观看") == ["谢", "谢", "观", "看"]


@pytest.mark.parametrize(
    "reference",
    ["No, no, no, not that one.", "It is very, very, very good.", "Ha ha ha ha, that was funny", "哈哈哈哈哈哈真好笑"],
)
def test_a_repeat_the_reference_itself_has_is_not_a_loop(reference):
    """A perfect transcript of a reference that repeats itself: WER 0, and no loop."""
    assert has_repetition_loop(reference)  # without the reference the repeats alone look like a loop
    assert not has_repetition_loop(reference, reference)


def test_repeating_more_than_the_reference_is_still_a_loop():
    reference = "It is very, very, very good."
    assert has_repetition_loop("It is very, very, very, very, very good.", reference)
    assert has_repetition_loop("It is good good good.", reference)  # a run the reference does not have
