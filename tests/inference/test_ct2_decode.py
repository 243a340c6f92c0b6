"""The ct2 backend decodes as the Hugging Face path does: same transcripts, n-best lists, lengths, mined pairs."""

from __future__ import annotations

import json

import pytest

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.data.audio import load_audio
from rlhf_asr.inference.ct2_decode import ct2_candidates, load_ct2_whisper
from rlhf_asr.inference.decode import decode_audio
from rlhf_asr.model.ct2_export import export_ct2
from rlhf_asr.model.loading import load_for_inference
from whisper_fixtures import make_tiny_whisper_dir, write_tone

pytest.importorskip("ctranslate2")
TEXTS = ["the cat sat on the mat", "hello world", "good morning everyone"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random tiny model (seed 1: a different output per model seed), its float32 export, three clips."""
    root = tmp_path_factory.mktemp("ct2decode")
    model_dir = make_tiny_whisper_dir(root, seed=1, max_length=24)
    ct2 = load_ct2_whisper(export_ct2(model_dir, root / "ct2", "float32"))
    rows = []
    for i, text in enumerate(TEXTS):
        write_tone(root / "wavs" / f"a{i}.wav", 1.0 + 0.5 * i, 250 + 150 * i, seed=i)
        rows.append({"audio": {"path": f"wavs/a{i}.wav"}, "duration": 1.0 + 0.5 * i, "sentence": text})
    (root / "asr.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    audios = [load_audio(root / "wavs" / f"a{i}.wav") for i in range(len(TEXTS))]
    model, processor = load_for_inference(model_dir)
    return root, model_dir, model, processor, ct2, audios


def test_greedy_transcripts_and_lengths_equal_the_hf_path(setup):
    """A random model never ends, so both run to the generation config's limit (24 new tokens):
    equal texts also pin CTranslate2's max_length rule (it generates max_length // 2 tokens)."""
    _, _, model, processor, ct2, audios = setup
    hf = decode_audio(model, processor, audios)
    languages, candidates = ct2_candidates(ct2)(audios, [None] * len(audios))
    assert languages == ["en"] * len(audios)
    assert [row[0].text for row in candidates] == [row[0].text for row in hf]
    assert [row[0].finished for row in candidates] == [row[0].finished for row in hf] == [False] * len(audios)
    assert len(processor.tokenizer(hf[0][0].text, add_special_tokens=False).input_ids) >= 20


def test_n_best_lists_equal_the_hf_path(setup):
    _, _, model, processor, ct2, audios = setup
    hf = decode_audio(model, processor, audios, num_beams=4, num_return_sequences=4)
    _, candidates = ct2_candidates(ct2, num_beams=4, num_return_sequences=4)(audios, [None] * len(audios))
    assert [[c.text for c in row] for row in candidates] == [[c.text for c in row] for row in hf]
    assert all(len({c.text for c in row}) == 4 for row in candidates)  # real n-best lists, not copies
    scores = [c.logprob for c in candidates[0]]
    assert scores == sorted(scores, reverse=True) and all(-20 < s < 0 for s in scores)


def test_sampling_gives_n_candidates(setup):
    _, _, _, _, ct2, audios = setup
    _, candidates = ct2_candidates(ct2, num_return_sequences=3, do_sample=True, temperature=1.0)(audios, [None] * 3)
    assert [len(row) for row in candidates] == [3, 3, 3]


@pytest.mark.parametrize("from_hf_folder", [False, True])
def test_make_pairs_with_the_ct2_backend_writes_the_hf_rows(setup, tmp_path, from_hf_folder):
    """--model a CT2 folder, or an HF folder exported first (float32: the same model)."""
    root, model_dir, *_ = setup
    common = ["make-pairs", "--data", str(root / "asr.jsonl"), "--num_candidates", "3", "--negative", "worst"]
    assert cli_main([*common, "--model", str(model_dir), "--output", str(tmp_path / "hf.jsonl")]) == 0
    ct2_model = str(model_dir) if from_hf_folder else str(root / "ct2")
    backend = ["--backend", "ct2", "--ct2_quantization", "float32"]
    assert cli_main([*common, "--model", ct2_model, *backend, "--output", str(tmp_path / "ct2.jsonl")]) == 0
    hf, ct2 = (
        [json.loads(line) for line in (tmp_path / name).read_text().splitlines()] for name in ("hf.jsonl", "ct2.jsonl")
    )
    assert len(hf) == len(ct2) == len(TEXTS)
    for a, b in zip(hf, ct2):
        assert (a["chosen"], a["rejected"], a["rejected_wer"]) == (b["chosen"], b["rejected"], b["rejected_wer"])


def test_evaluate_with_the_ct2_backend_reports_both_wers(setup, tmp_path, capsys):
    """float32 export, greedy: the same transcripts, so the same WER and a difference of 0."""
    root, model_dir, *_ = setup
    command = ["evaluate", "--model", str(model_dir), "--data", str(root / "asr.jsonl")]
    command += ["--backend", "ct2", "--ct2_quantization", "float32", "--output", str(tmp_path / "m.json")]
    assert cli_main(command) == 0
    assert "WER ct2 - hf" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["backend"] == "ct2" and metrics["num_utterances"] == len(TEXTS)
    assert metrics["wer"] == metrics["hf_wer"] > 0 and metrics["wer_difference"] == 0
    assert metrics["transcripts_differing"] == 0 and metrics["ct2_compute_type"] == "float32"
    rows = (tmp_path / "utterances.csv").read_text().splitlines()
    assert rows[0].startswith("source,kind,language,reference,hypothesis,hf_hypothesis") and len(rows) == 1 + len(TEXTS)
    assert cli_main(["evaluate", *command[1:5], "--output", str(tmp_path / "x.json"), "--ct2_model", "ct2"]) == 2


def test_evaluate_against_a_different_ct2_model_shows_the_difference(setup, tmp_path):
    root, model_dir, *_ = setup
    other = export_ct2(make_tiny_whisper_dir(tmp_path, seed=2, max_length=24), tmp_path / "other", "float32")
    command = ["evaluate", "--model", str(model_dir), "--data", str(root / "asr.jsonl"), "--backend", "ct2"]
    assert cli_main([*command, "--ct2_model", str(other), "--output", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["transcripts_differing"] == len(TEXTS)
    assert metrics["wer_difference"] == metrics["wer"] - metrics["hf_wer"]


def test_ct2_metrics_on_a_mixed_manifest_equal_the_hf_backend_s(setup, tmp_path):
    """Speech and no-speech rows: WER on the speech rows alone and the same hallucination rates as
    `--backend hf` (the float32 export decodes the same text); `manifest` is the path, not a repr."""
    root, model_dir, *_ = setup
    rows = [json.loads(line) for line in (root / "asr.jsonl").read_text().splitlines()]
    rows += [{**row, "sentence": ""} for row in rows]  # the same clips as no-speech rows
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "wavs").symlink_to(root / "wavs")
    data = ["--model", str(model_dir), "--data", str(tmp_path / "mixed.jsonl")]
    assert cli_main(["evaluate", *data, "--output", str(tmp_path / "hf.json")]) == 0
    ct2_run = ["--backend", "ct2", "--ct2_quantization", "float32", "--output", str(tmp_path / "ct2.json")]
    assert cli_main(["evaluate", *data, *ct2_run]) == 0
    hf, ct2 = (json.loads((tmp_path / name).read_text()) for name in ("hf.json", "ct2.json"))
    assert ct2["wer"] == ct2["hf_wer"] == hf["wer"] and ct2["reference_words"] == hf["reference_words"]
    assert ct2["rows_no_speech"] == ct2["rows_speech"] == len(TEXTS)
    for key in ("hallucination_rate", "nonspeech_output_rate", "insertion_rate", "repetition_rate"):
        assert ct2[key] == ct2[f"hf_{key}"] == hf[key] is not None, key
    assert ct2["nonspeech_output_rate"] == 1.0  # a random model writes on every clip
    assert ct2["manifest"] == hf["manifest"] == str(tmp_path / "mixed.jsonl")


def test_faster_whisper_backend_scores_what_faster_whisper_writes(setup, tmp_path):
    """The real faster-whisper on the export, with its own defaults: the same text as calling it by
    hand, scored with the hf backend's rules (WER on speech rows, non-speech output on the rest)."""
    faster_whisper = pytest.importorskip("faster_whisper")
    import ctranslate2

    from rlhf_asr.evaluation.faster_whisper_eval import SEED

    root, model_dir, *_ = setup
    rows = [json.loads(line) for line in (root / "asr.jsonl").read_text().splitlines()][:2]
    rows += [{**rows[0], "sentence": ""}]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "wavs").symlink_to(root / "wavs")
    command = ["evaluate", "--model", str(model_dir), "--data", str(tmp_path / "mixed.jsonl")]
    command += ["--backend", "faster-whisper", "--ct2_model", str(root / "ct2"), "--output", str(tmp_path / "m.json")]
    assert cli_main(command) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["backend"] == "faster-whisper" and metrics["num_beams"] == 5
    assert metrics["rows_speech"] == 2 and metrics["rows_no_speech"] == 1
    by_hand = faster_whisper.WhisperModel(str(root / "ct2"), device="cpu")
    texts = []
    for row in rows:
        ctranslate2.set_random_seed(SEED)  # the temperature fallback samples: seeded per clip, as evaluate does
        segments, _ = by_hand.transcribe(load_audio(root / row["audio"]["path"]))  # the samples we decode
        texts.append("".join(segment.text for segment in segments).strip())
    csv_rows = (tmp_path / "utterances.csv").read_text().splitlines()[1:]
    assert len(csv_rows) == 3
    assert metrics["nonspeech_output_rate"] == (1.0 if texts[2] else 0.0)
    from rlhf_asr.evaluation.hallucination import score_rows

    expected = score_rows([row["sentence"] for row in rows], texts, "en")
    assert metrics["wer"] == expected["wer"] and metrics["hallucination_rate"] == expected["hallucination_rate"]
