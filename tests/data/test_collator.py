"""Decoder sequences and label masking with the real Whisper tokenizers."""

import pytest
import torch

from rlhf_asr.data.collator import PreferenceCollator, first_divergence
from rlhf_asr.data.tokens import EncodedTranscript, TranscriptEncoder
from rlhf_asr.loss.logps import IGNORE_INDEX
from whisper_fixtures import tiny_processor

SOT, EOT, NO_TS, EN_ONLY_TS0 = 50257, 50256, 50362, 50363


@pytest.fixture(scope="module")
def english():
    return TranscriptEncoder(tiny_processor("tiny.en").tokenizer)


@pytest.fixture(scope="module")
def multilingual():
    return TranscriptEncoder(tiny_processor("base").tokenizer)


def test_english_only_prefix_has_no_language_or_task(english):
    encoded = english.encode("Hello world.", None)
    assert not english.multilingual and english.known_languages() is None
    assert encoded.ids[:2] == (SOT, NO_TS) and encoded.prefix_len == 2
    assert encoded.ids[-1] == EOT
    assert english.tokenizer.decode(encoded.ids[2:-1]) == " Hello world."


def test_multilingual_prefix(multilingual):
    vocab = multilingual.tokenizer.get_vocab()
    encoded = multilingual.encode("你好", "zh")
    assert multilingual.multilingual and {"zh", "en", "de"} <= multilingual.known_languages()
    assert encoded.ids[:4] == (
        vocab["<|startoftranscript|>"],
        vocab["<|zh|>"],
        vocab["<|transcribe|>"],
        vocab["<|notimestamps|>"],
    )
    assert encoded.prefix_len == 4
    translate = TranscriptEncoder(multilingual.tokenizer, task="translate").encode("hallo", "de")
    assert translate.ids[1:3] == (vocab["<|de|>"], vocab["<|translate|>"])


def test_timestamps_wrap_segments(english):
    from rlhf_asr.data.examples import Segment

    encoder = TranscriptEncoder(english.tokenizer, timestamps=True)
    encoded = encoder.encode_segments([Segment(0.0, 1.5, "hi"), Segment(1.5, 2.04, "there")], None)
    ids = encoded.ids
    assert ids[0] == SOT and NO_TS not in ids and encoded.prefix_len == 1
    assert ids[1] == EN_ONLY_TS0 and ids[-1] == EOT
    timestamps = [i - EN_ONLY_TS0 for i in ids if i >= EN_ONLY_TS0]
    assert timestamps == [0, 75, 75, 102]  # 0.02 s steps


def _collate(encoder, pairs, **options):
    items = [
        {
            "input_features": torch.zeros(80, 3000).numpy(),
            "chosen": encoder.encode(c, None),
            "rejected": encoder.encode(r, None),
            "index": i,
        }
        for i, (c, r) in enumerate(pairs)
    ]
    return items, PreferenceCollator(pad_token_id=EOT, **options)(items)


def test_labels_are_the_sequence_shifted_once_and_padding_is_ignored(english):
    items, batch = _collate(english, [("a much longer chosen transcript here", "short"), ("hi", "hey you")])
    for row, item in enumerate(items):
        ids = torch.tensor(item["chosen"].ids)
        n = len(ids) - 1
        assert torch.equal(batch["chosen_input_ids"][row, :n], ids[:-1])
        assert torch.equal(batch["chosen_labels"][row, :n], ids[1:])  # logits at t score label t
        assert (batch["chosen_labels"][row, n:] == IGNORE_INDEX).all()
        assert (batch["chosen_input_ids"][row, n:] == EOT).all()
    assert batch["input_features"].shape == (2, 80, 3000)
    assert batch["example_index"].tolist() == [0, 1]


def test_completion_only_loss_masks_prefix_in_both_transcripts(english):
    _, plain = _collate(english, [("the cat", "the hat")])
    _, masked = _collate(english, [("the cat", "the hat")], completion_only_loss=True)
    _, older = _collate(english, [("the cat", "the hat")], disable_prompt_loss=True)  # its older name
    assert all(torch.equal(masked[key], older[key]) for key in ("chosen_labels", "rejected_labels"))
    # label 0 is <|notimestamps|> (the prompt after <|startoftranscript|>)
    for key in ("chosen_labels", "rejected_labels"):
        assert plain[key][0, 0] == NO_TS
        assert masked[key][0, 0] == IGNORE_INDEX
        assert torch.equal(masked[key][0, 1:], plain[key][0, 1:])


def test_diverging_scope_scores_both_odds_from_first_difference(english):
    """Both odds means cover the same span: the shared prefix is in neither transcript's odds."""
    chosen, rejected = "the cat sat on the mat", "the cat sat on a hat"
    items, batch = _collate(english, [(chosen, rejected)], rejected_scope="diverging")
    c, r = items[0]["chosen"].ids, items[0]["rejected"].ids
    start = first_divergence(c, r)
    assert c[:start] == r[:start] and c[start] != r[start]
    for key, ids in (("chosen_odds_labels", c), ("rejected_labels", r)):
        labels = batch[key][0]
        # label t is token t+1: the first scored label is token `start`, the first differing one
        assert (labels[: start - 1] == IGNORE_INDEX).all()
        assert labels[start - 1] == ids[start]
        assert labels[start - 1 : len(ids) - 1].tolist() == list(ids[start:])


def test_diverging_scope_pair_with_shared_prefix_of_length_k():
    """Hand-built ids: a shared prefix of k tokens leaves tokens k.. scored in both transcripts."""

    k = 5
    shared = (SOT, NO_TS, 11, 12, 13)
    chosen, rejected = EncodedTranscript(shared + (21, 22, EOT), 2), EncodedTranscript(shared + (31, EOT), 2)
    items = [{"input_features": torch.zeros(80, 3000).numpy(), "chosen": chosen, "rejected": rejected, "index": 0}]
    batch = PreferenceCollator(pad_token_id=EOT, rejected_scope="diverging")(items)
    scored = lambda labels: [t for t in labels.tolist() if t != IGNORE_INDEX]  # noqa: E731
    assert scored(batch["chosen_odds_labels"][0]) == list(chosen.ids[k:]) == [21, 22, EOT]
    assert scored(batch["rejected_labels"][0]) == list(rejected.ids[k:]) == [31, EOT]
    everything = PreferenceCollator(pad_token_id=EOT)(items)
    assert scored(everything["chosen_labels"][0]) == list(chosen.ids[1:])


@pytest.mark.parametrize("completion_only_loss", [False, True])
def test_diverging_scope_keeps_the_whole_chosen_for_the_nll(english, completion_only_loss):
    """Issue 22: ORPO's NLL is over the whole chosen; only the odds ratio starts at the divergence."""
    pairs = [("the cat sat on the mat", "the cat sat on a hat"), ("hello world", "hello word")]
    _, everything = _collate(english, pairs, completion_only_loss=completion_only_loss)
    _, diverging = _collate(english, pairs, completion_only_loss=completion_only_loss, rejected_scope="diverging")
    assert torch.equal(diverging["chosen_labels"], everything["chosen_labels"])
    assert torch.equal(diverging["chosen_input_ids"], everything["chosen_input_ids"])
    odds = diverging["chosen_odds_labels"]
    assert odds.shape == everything["chosen_labels"].shape
    # the odds mask is the NLL mask with the shared prefix taken out: same tokens where scored
    scored = odds != IGNORE_INDEX
    assert torch.equal(odds[scored], everything["chosen_labels"][scored])
    assert (scored.sum(1) < (everything["chosen_labels"] != IGNORE_INDEX).sum(1)).all()
    assert "chosen_odds_labels" not in everything  # scope "all": one mask serves both terms


def test_diverging_scope_keeps_at_least_end_of_text(english):
    items, batch = _collate(english, [("the cat sat", "the cat")], rejected_scope="diverging")
    assert (batch["rejected_labels"][0] != IGNORE_INDEX).sum() >= 1
    assert (batch["chosen_odds_labels"][0] != IGNORE_INDEX).sum() >= 1


def test_unknown_scope_is_rejected():
    with pytest.raises(ValueError, match="rejected_scope"):
        PreferenceCollator(pad_token_id=0, rejected_scope="some")


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_timestamp_just_past_30_s_is_clamped_to_the_last_timestamp_token(name):
    """The manifest accepts segment ends up to 0.05 s past the audio (30 s at most): 30.04 -> <|30.00|>."""
    from rlhf_asr.data.examples import Segment

    tokenizer = tiny_processor(name).tokenizer
    encoder = TranscriptEncoder(tokenizer, timestamps=True)
    last = tokenizer.convert_tokens_to_ids("<|30.00|>")
    language = None if name == "tiny.en" else "en"
    for end in (30.0, 30.02, 30.04, 30.05):
        ids = encoder.encode_segments([Segment(29.0, end, "hi")], language).ids
        assert ids[-2] == last and max(ids) < len(tokenizer)


def test_timestamp_beyond_the_tolerance_is_refused_naming_the_row(english):
    from rlhf_asr.data.dataset import PreferenceDataset
    from rlhf_asr.data.examples import PreferenceExample, Segment
    from rlhf_asr.data.tokens import TranscriptError
    from rlhf_asr.errors import UserInputError

    encoder = TranscriptEncoder(english.tokenizer, timestamps=True)
    with pytest.raises(TranscriptError, match="30.2 s is past Whisper's 30 s window"):
        encoder.encode_segments([Segment(29.0, 30.2, "hi")], None)
    good, late = (Segment(0.0, 1.0, "hi"),), (Segment(29.0, 30.2, "hi"),)
    example = PreferenceExample("a.wav", 30.0, "hi", "ho", None, good, late, "train.jsonl:7")
    with pytest.raises(UserInputError, match=r"train.jsonl:7: timestamp 30.2 s is past"):
        PreferenceDataset([example], None, encoder)


@pytest.mark.parametrize("token", ["<|endoftext|>", "<|0.00|>", "<|notimestamps|>"])
@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_control_tokens_written_in_a_transcript_are_refused(name, token):
    from rlhf_asr.data.tokens import TranscriptError

    encoder = TranscriptEncoder(tiny_processor(name).tokenizer)
    with pytest.raises(TranscriptError, match=f"control token '{token[:4]}"):
        encoder.encode(f"the cat {token} sat", None if name == "tiny.en" else "en")
    # the same characters apart are ordinary text
    assert max(encoder.text_ids("a <| b |> c")) < encoder.eot


def test_lone_surrogate_in_a_transcript_is_a_clear_error(english):
    from rlhf_asr.data.tokens import TranscriptError

    with pytest.raises(TranscriptError, match="not valid Unicode text .*surrogate"):
        english.encode("the cat \ud800 sat", None)


def test_empty_chosen_is_the_prompt_then_end_of_text(english, multilingual):
    """No speech: the right output is nothing, so the chosen sequence holds no text token at all."""
    assert english.encode("", None) == EncodedTranscript((SOT, NO_TS, EOT), 2)
    vocab = multilingual.tokenizer.get_vocab()
    encoded = multilingual.encode("", "de")
    prompt = ("<|startoftranscript|>", "<|de|>", "<|transcribe|>", "<|notimestamps|>")
    assert encoded.ids == tuple(vocab[token] for token in (*prompt, "<|endoftext|>")) and encoded.prefix_len == 4
    timed = TranscriptEncoder(english.tokenizer, timestamps=True)
    assert timed.encode_segments((), None).ids == (SOT, EOT)  # English-only with timestamps: prompt is <|sot|>


def test_empty_chosen_collates_as_its_own_short_block(english):
    """An empty chosen next to a long rejected: its block is as long as the batch's longest chosen."""
    items, batch = _collate(english, [("", "you you you you you")])
    assert batch["chosen_input_ids"].tolist() == [[SOT, NO_TS]]
    assert batch["chosen_labels"].tolist() == [[NO_TS, EOT]]  # logits at t score label t
    assert len(batch["rejected_labels"][0]) == len(items[0]["rejected"].ids) - 1
    _, masked = _collate(english, [("", "you")], completion_only_loss=True)
    assert masked["chosen_labels"].tolist() == [[IGNORE_INDEX, EOT]]
    _, diverging = _collate(english, [("", "Thank you.")], rejected_scope="diverging")
    assert diverging["chosen_odds_labels"].tolist() == [[IGNORE_INDEX, EOT]]
    assert diverging["chosen_labels"].tolist() == [[NO_TS, EOT]]  # the NLL: the whole chosen
    rejected = diverging["rejected_labels"][0].tolist()
    ids = english.encode("Thank you.", None).ids
    assert rejected == [IGNORE_INDEX, *ids[2:]]  # scored from the first text token, as the chosen's end
    # a batch mixing speech and no speech pads the empty chosen to the speech chosen, as any shorter one
    items, mixed = _collate(english, [("", "you"), ("hello there world", "hello")])
    assert mixed["chosen_labels"][0].tolist()[:2] == [NO_TS, EOT]
    assert (mixed["chosen_labels"][0, 2:] == IGNORE_INDEX).all()
