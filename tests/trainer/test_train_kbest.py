"""K-best rows in training (trainer/batches.py, data/kbest.py): items and batches, `--loss mwer` end to
end (command line and Python API, from `make-pairs --nbest` to `evaluate`), MWER's loss on a live
pass, a resumed run exact, DPO's stored reference of K candidates equal to a live pass, the
refusals, and `--loss sft` decoding the chosen alone."""

from __future__ import annotations

import json
import math

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration

import rlhf_asr
from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.data.collator import WORD_ERRORS_KEY, CandidateCollator, PreferenceCollator
from rlhf_asr.data.kbest import KBestDataset
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.metrics import score_utterance
from rlhf_asr.loss.logps import IGNORE_INDEX
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.loading import load_processor
from rlhf_asr.pairs.rows import nbest_candidate, nbest_row
from rlhf_asr.trainer.batches import run_collator
from rlhf_asr.trainer.preference_trainer import PreferenceTrainer
from rlhf_asr.trainer.reference import REFERENCE_FILE
from rlhf_asr.trainer.run import build_dataset
from train_fixtures import PAIRS, train, train_argv, write_manifest
from whisper_fixtures import make_tiny_whisper_dir

ONE_BATCH = ("--max_steps", "1", "--per_device_train_batch_size", str(len(PAIRS)), "--plot", "False")


def _candidates(reference: str, rejected: str, i: int) -> list[dict]:
    """1-3 hypotheses: the pair's rejected, then (rows 1, 2, 4, 5) the reference as the model might write
    it (0 errors), then (rows 2, 5) a short wrong one; row 3 repeats the reference itself, word for word."""
    texts = [rejected, reference.capitalize() + ".", "oh no"][: 1 + i % 3]
    if i == 3:
        texts.append(reference)
    return [nbest_candidate(t, score_utterance(reference, t, "en").errors, -0.1 * (k + 1)) for k, t in enumerate(texts)]


def write_kbest(folder, name: str, pairs, audio: str) -> str:
    rows = [
        nbest_row(f"audio/{audio}{i}.wav", 1.0 + 0.1 * i, chosen, _candidates(chosen, rejected, i), "English")
        for i, (chosen, rejected) in enumerate(pairs)
    ]
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kbest")
    pairs = write_manifest(folder, "train", PAIRS)  # also the audio the K-best rows name
    write_manifest(folder, "test", PAIRS[:2])
    asr = folder / "test.asr.jsonl"
    asr.write_text("".join(json.dumps({**json.loads(line), "sentence": json.loads(line)["chosen"]}) + "\n"
                           for line in (folder / "test.jsonl").read_text().splitlines()))  # fmt: skip
    return {
        "model": make_tiny_whisper_dir(folder),
        "pairs": pairs,
        "train": write_kbest(folder, "kbest", PAIRS, "train"),
        "test": write_kbest(folder, "kbest_test", PAIRS[:2], "test"),
        "asr": asr,
        "root": folder,
    }


def _dataset(ws, tmp_path, manifest, keep_correct=True):
    _, data_args, _ = parse_training_args(train_argv(ws, tmp_path / "unused"))
    processor = load_processor(str(ws["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    dataset, _ = build_dataset(str(manifest), data_args, processor, encoder, keep_correct=keep_correct)
    return dataset, encoder, processor


def test_kbest_items_put_the_reference_first_and_count_no_candidate_twice(ws, tmp_path):
    dataset, encoder, _ = _dataset(ws, tmp_path, ws["train"])
    assert isinstance(dataset, KBestDataset) and len(dataset) == len(PAIRS)
    item = dataset[2]
    reference, rejected = PAIRS[2]
    assert item["candidates"] == [encoder.encode(t, None) for t in (reference, rejected, reference.capitalize() + ".",
                                                                      "oh no")]  # fmt: skip
    assert item["word_errors"] == [0, 1, 0, 3]
    # row 3's last hypothesis is the reference, token for token: it is candidate 0 already
    errors = score_utterance(PAIRS[3][0], PAIRS[3][1], "en").errors
    assert len(dataset[3]["candidates"]) == 1 + 1 and dataset[3]["word_errors"] == [0, errors] and errors > 0
    strict, _, _ = _dataset(ws, tmp_path, ws["train"], keep_correct=False)  # the pairwise objectives' rejected
    assert strict[2]["word_errors"] == [0, 1, 3] and strict[1]["word_errors"] == [0, 1]


def test_a_kbest_batch_pads_absent_slots_and_carries_the_word_errors(ws, tmp_path):
    dataset, _, processor = _dataset(ws, tmp_path, ws["train"])
    eot = processor.tokenizer.eos_token_id
    batch = CandidateCollator(eot, completion_only_loss=True)([dataset[i] for i in (0, 2)])
    assert batch["candidate_input_ids"].shape[:2] == (2, 4)
    assert batch[WORD_ERRORS_KEY].tolist() == [[0, 1, 0, 0], [0, 1, 0, 3]]
    assert (batch["candidate_labels"][0, 2:] == IGNORE_INDEX).all()  # row 0 has two candidates
    assert CandidateCollator(eot, min_candidates=2)([dataset[0]])["candidate_input_ids"].shape[1] == 2

    pairs, _, _ = _dataset(ws, tmp_path, ws["pairs"])
    items = [pairs[i] for i in range(3)]
    as_pairs = PreferenceCollator(eot, completion_only_loss=True)(items)
    chosen = CandidateCollator(eot, completion_only_loss=True, chosen_only=True)(items)
    assert chosen["candidate_labels"].shape[1] == 1 and WORD_ERRORS_KEY not in chosen
    torch.testing.assert_close(chosen["candidate_labels"][:, 0], as_pairs["chosen_labels"], rtol=0, atol=0)


def _mwer_by_hand(logps, tokens, errors, ce_weight=0.01) -> torch.Tensor:
    """Prabhavalkar et al. 2018 written out per row: softmax over the present candidates' summed log-probs,
    expected errors minus their mean, averaged over rows with two or more; plus the reference's token-mean NLL."""
    risks = []
    for row in range(logps.shape[0]):
        present = tokens[row] > 0
        if present.sum() < 2:
            continue
        p = torch.softmax(logps[row][present].double(), 0)
        w = errors[row][present].double()
        risks.append((p * (w - w.mean())).sum())
    nll = -logps[:, 0].double().sum() / tokens[:, 0].double().sum()
    return torch.stack(risks).mean() + ce_weight * nll


def test_the_mwer_loss_of_a_kbest_batch_is_the_papers_on_a_live_pass(ws, tmp_path):
    dataset, _, processor = _dataset(ws, tmp_path, ws["train"])
    batch = CandidateCollator(processor.tokenizer.eos_token_id, True, min_candidates=2)(list(dataset))
    torch.manual_seed(0)
    engine = PreferenceWhisper(WhisperForConditionalGeneration.from_pretrained(ws["model"]).train())
    config = parse_training_args(train_argv(ws, tmp_path, "--loss", "mwer", "--eval_strategy", "no"))[2]
    loss = PreferenceTrainer(model=engine, args=config).compute_loss(engine, dict(batch))
    live = engine.forward_candidates(**{k: v for k, v in batch.items() if k != WORD_ERRORS_KEY})
    expected = _mwer_by_hand(live.logps.detach(), live.tokens, batch[WORD_ERRORS_KEY])
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    shuffled = batch[WORD_ERRORS_KEY].roll(1, dims=1)  # errors on the wrong candidates: another number
    assert float(_mwer_by_hand(live.logps.detach(), live.tokens, shuffled)) != pytest.approx(float(expected), rel=1e-3)


def _logged(output, step: int) -> dict:
    state = json.loads((output / "trainer_state.json").read_text())
    return next(row for row in state["log_history"] if "loss" in row and row["step"] == step)


def test_a_resumed_mwer_run_ends_where_the_uninterrupted_run_does(ws, tmp_path):
    common = ("--loss", "mwer", "--ce_weight", "0.1", "--max_steps", "4", "--save_strategy", "steps")
    common += ("--save_steps", "2", "--plot", "False")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(ws, full, *common)
    resumed.mkdir()
    (resumed / "checkpoint-2").symlink_to(full / "checkpoint-2", target_is_directory=True)
    summary = train(ws, resumed, *common, "--resume_from_checkpoint", str(resumed / "checkpoint-2"))
    assert summary["global_step"] == 4 and summary["loss_weights"] == {"ce_weight": 0.1, "reference_in_list": True}
    for step in (3, 4):
        a, b = _logged(full / "checkpoint-4", step), _logged(resumed / "checkpoint-4", step)
        assert b["loss"] == a["loss"] and b["mwer/expected_errors"] == a["mwer/expected_errors"], step
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    start = load_file(full / "checkpoint-2" / "adapter_model.safetensors")
    assert any(not torch.equal(start[key], a[key]) for key in a)  # steps 3-4 trained


def test_dpo_on_kbest_rows_stores_the_starting_models_log_probs_of_every_candidate(ws, tmp_path, rlhf_log):
    out = tmp_path / "dpo"
    summary = train(ws, out, *ONE_BATCH, "--loss", "dpo", "--save_strategy", "no")
    assert summary["train_loss"] == pytest.approx(math.log(2), abs=1e-5)  # LoRA's B is 0: the policy is the reference
    assert "computing the starting model's log-probs of 6 train pairs" in rlhf_log.text
    stored = load_file(out / REFERENCE_FILE)["train"]
    dataset, _, processor = _dataset(ws, tmp_path, ws["train"], keep_correct=False)  # DPO's rejected
    assert stored.shape == (len(PAIRS), max(len(dataset[i]["candidates"]) for i in range(len(dataset)))) == (6, 3)
    batch = CandidateCollator(processor.tokenizer.eos_token_id, True, min_candidates=2)(list(dataset))
    batch.pop(WORD_ERRORS_KEY)
    base = WhisperForConditionalGeneration.from_pretrained(ws["model"])
    trained = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad(), trained.disable_adapter():
        live = PreferenceWhisper(trained).forward_candidates(**batch)
    torch.testing.assert_close(stored, torch.where(live.present, live.logps, 0.0))
    assert (stored[live.tokens == 0] == 0).all() and (stored[live.present] < 0).all()


@pytest.mark.parametrize("loss", ["orpo", "simpo"])
def test_the_other_pairwise_objectives_train_on_kbest_rows(ws, tmp_path, loss):
    summary = train(ws, tmp_path / loss, *ONE_BATCH, "--loss", loss, "--save_strategy", "no")
    assert summary["loss"] == loss and math.isfinite(summary["train_loss"])


def test_pairs_with_mwer_and_kbest_rows_with_a_diverging_scope_are_one_line_each(ws, tmp_path, capsys):
    argv = train_argv({**ws, "train": ws["pairs"]}, tmp_path / "a", "--loss", "mwer")
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err  # after the read's summary line, the one error line
    assert len([line for line in err.splitlines() if "error" in line]) == 1 and "Traceback" not in err
    assert (
        f"--loss mwer needs K-best rows (a reference and hypotheses with their word errors), but --train_data "
        f"{ws['pairs']} holds preference pairs: write K-best rows with `rlhf-asr make-pairs --nbest 4`" in err
    )
    assert cli_main(["train", *train_argv(ws, tmp_path / "b", "--rejected_scope", "diverging")]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert "not with the K-best rows of --train_data" in err


def test_sft_decodes_the_chosen_alone_and_trains_the_same_nll(ws, tmp_path):
    dataset, _, processor = _dataset(ws, tmp_path, ws["pairs"])
    items = [dataset[i] for i in range(len(dataset))]
    torch.manual_seed(0)
    engine = PreferenceWhisper(WhisperForConditionalGeneration.from_pretrained(ws["model"]).train())
    config = parse_training_args(train_argv(ws, tmp_path, "--loss", "sft", "--eval_strategy", "no"))[2]
    trainer = PreferenceTrainer(model=engine, args=config)
    collator = run_collator(trainer.objective, True, processor.tokenizer.eos_token_id, True, "all")
    batch = collator(items)
    assert batch["candidate_input_ids"].shape[1] == 1  # one block per audio: the rejected never decoded
    pair = engine(**PreferenceCollator(processor.tokenizer.eos_token_id, completion_only_loss=True)(items))
    expected = -pair["chosen_logps"].sum() / pair["chosen_tokens"].sum()
    assert float(trainer.compute_loss(engine, batch).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_make_pairs_nbest_then_mwer_and_dpo_then_evaluate_from_the_command_line(ws, tmp_path):
    model, asr = str(ws["model"]), str(ws["asr"])
    kbest = tmp_path / "kbest.jsonl"
    assert cli_main(["make-pairs", "--model", model, "--data", asr, "--output", str(kbest), "--nbest", "4",
                     "--device", "cpu"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in kbest.read_text().splitlines()]
    assert rows and all("candidates" in row for row in rows)
    for loss in ("mwer", "dpo"):
        out = tmp_path / loss
        argv = train_argv({**ws, "train": kbest}, out, "--loss", loss, "--max_steps", "2", "--plot", "False")
        argv += ["--test_data", str(kbest), "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "no"]
        assert cli_main(["train", *argv]) == 0
        summary = json.loads((out / "run_summary.json").read_text())
        assert summary["loss"] == loss and summary["global_step"] == 2
        assert math.isfinite(summary["final_eval"]["eval_loss"])
        assert ("eval_mwer/expected_errors" in summary["final_eval"]) == (loss == "mwer")
        metrics = tmp_path / f"{loss}.json"
        assert cli_main(["evaluate", "--model", str(out), "--data", asr, "--output", str(metrics), "--device",
                         "cpu"]) == 0  # fmt: skip
        assert json.loads(metrics.read_text())["num_utterances"] == 2
    card = (tmp_path / "mwer" / "README.md").read_text()
    assert "# Whisper fine-tuned with MWER" in card and "`--ce_weight` 0.01, `--reference_in_list` True" in card
    on_kbest = tmp_path / "kbest-metrics.json"  # a K-best file is scored against its references
    assert cli_main(["evaluate", "--model", str(tmp_path / "mwer"), "--data", str(kbest), "--output",
                     str(on_kbest), "--device", "cpu"]) == 0  # fmt: skip
    metrics = json.loads(on_kbest.read_text())
    assert metrics["num_utterances"] == len(rows) and metrics["preference_accuracy"] is None


def test_make_pairs_nbest_then_mwer_then_evaluate_from_python(ws, tmp_path):
    kbest = tmp_path / "kbest.jsonl"
    summary = rlhf_asr.make_pairs(ws["model"], ws["asr"], kbest, nbest=4, device="cpu")
    assert summary["written"] >= 1 and summary["hypotheses"] >= summary["written"]
    run = rlhf_asr.train(kbest, model=str(ws["model"]), output_dir=tmp_path / "run", loss="mwer", max_steps=2,
                         per_device_train_batch_size=2, report_to="none", plot=False, save_strategy="no")  # fmt: skip
    assert run["loss"] == "mwer" and run["global_step"] == 2
    assert rlhf_asr.evaluate(run["output_dir"], ws["asr"], device="cpu")["num_utterances"] == 2
    with pytest.raises(UserInputError, match="--loss mwer needs K-best rows"):
        rlhf_asr.train(ws["pairs"], model=str(ws["model"]), output_dir=tmp_path / "pairs", loss="mwer", max_steps=1)
