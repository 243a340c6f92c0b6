"""Training runs end to end on a tiny random Whisper: outputs, metrics, resume, AdaLoRA, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args
from rlhf_asr.errors import UserInputError
from rlhf_asr.trainer.run import make_encoder_cache, run_training
from whisper_fixtures import make_tiny_whisper_dir, write_tone

PAIRS = [
    ("the cat sat on the mat", "the hat sat on the mat"),
    ("hello world", "yellow world"),
    ("good morning everyone", "good mourning everyone"),
    ("one two three four", "one too three for"),
    ("open the window please", "open the widow please"),
    ("it is raining today", "it is training today"),
]
METRICS = [
    "nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/chosen", "rewards/rejected",
    "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
]


def write_manifest(folder: Path, name: str, pairs, language="English", tone: int = 0) -> Path:
    """Row i's audio is tone i + `tone`: manifests with other `tone` values hold other audio."""
    rows = []
    for i, (chosen, rejected) in enumerate(pairs):
        seconds = 1.0 + 0.1 * i
        write_tone(folder / "audio" / f"{name}{i}.wav", seconds, 200 + 40 * (i + tone), seed=i + tone)
        rows.append({"audio": {"path": f"audio/{name}{i}.wav"}, "duration": seconds, "chosen": chosen,
                     "rejected": rejected, "language": language})
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    return {
        "model": make_tiny_whisper_dir(folder),
        "train": write_manifest(folder, "train", PAIRS),
        "test": write_manifest(folder, "test", PAIRS[:2]),
        "root": folder,
    }


def train_argv(workspace, output: Path, *extra: str) -> list[str]:
    return [
        "--base_model", str(workspace["model"]), "--train_data", str(workspace["train"]),
        "--output_dir", str(output), "--per_device_train_batch_size", "2", "--warmup_steps", "0",
        "--logging_steps", "1", "--report_to", "none", "--seed", "7", "--learning_rate", "5e-3",
        "--dataloader_pin_memory", "False", *extra,
    ]


def train(workspace, output: Path, *extra: str):
    return run_training(*parse_args(train_argv(workspace, output, *extra)))


def test_lora_run_writes_adapter_metrics_curves_and_eval(workspace, tmp_path):
    out = tmp_path / "lora"
    summary = train(workspace, out, "--use_adalora", "False", "--num_train_epochs", "2",
                    "--test_data", str(workspace["test"]), "--eval_wer", "True")
    assert summary["global_step"] == 6 and summary["train_rows"] == 6
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                 "processor_config.json", "training_curves.png", "run_summary.json"):
        assert (out / name).is_file(), name
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    train_logs = [row for row in state["log_history"] if "loss" in row]
    eval_logs = [row for row in state["log_history"] if "eval_loss" in row]
    assert len(eval_logs) == 2
    wer_logs = [row for row in state["log_history"] if "eval_wer" in row]
    assert len(wer_logs) == 2 and wer_logs[0]["eval_wer"] > 0 and 0 <= wer_logs[0]["eval_preference_accuracy"] <= 1
    for key in METRICS:
        assert key in train_logs[0] and f"eval_{key}" in eval_logs[0], key
    # learning happens: the chosen transcripts become more likely
    assert train_logs[-1]["nll_loss"] < train_logs[0]["nll_loss"]


def test_resume_continues_to_the_same_final_state(workspace, tmp_path):
    full = tmp_path / "full"
    train(workspace, full, "--use_adalora", "False", "--max_steps", "6", "--save_strategy", "steps",
          "--save_steps", "3", "--plot", "False")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-3").symlink_to(full / "checkpoint-3", target_is_directory=True)
    summary = train(workspace, resumed, "--use_adalora", "False", "--max_steps", "6", "--save_strategy", "steps",
                    "--save_steps", "3", "--plot", "False", "--resume_from_checkpoint", str(resumed / "checkpoint-3"))
    assert summary["global_step"] == 6
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    start = load_file(full / "checkpoint-3" / "adapter_model.safetensors")
    assert any(not torch.allclose(start[key], a[key]) for key in a)  # steps 4-6 changed the adapter


def test_adalora_resume_after_pruning_began_is_exact(workspace, tmp_path):
    """12 steps: warm-up to step 1, pruning on steps 2-9, final budget from step 10; resume at step 6.

    The checkpoint's adapter is saved pruned, and the importance averages that decide the next
    pruning live only on the rank allocator: both must come back for the same final adapter.
    """
    common = ("--use_adalora", "True", "--max_steps", "12", "--adalora_init_r", "6", "--adalora_target_r", "2",
              "--save_strategy", "steps", "--save_steps", "3", "--plot", "False")
    full = tmp_path / "full"
    train(workspace, full, *common)
    checkpoint = json.loads((full / "checkpoint-6" / "adapter_config.json").read_text())
    assert checkpoint["rank_pattern"], "pruning had not begun at the resume point"
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-6").symlink_to(full / "checkpoint-6", target_is_directory=True)
    summary = train(workspace, resumed, *common, "--resume_from_checkpoint", str(resumed / "checkpoint-6"))
    assert summary["global_step"] == 12
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(b[key], a[key]), key  # same CPU kernels, data order and RNG: bit for bit
    final_pattern = json.loads((full / "adapter_config.json").read_text())["rank_pattern"]
    assert json.loads((resumed / "adapter_config.json").read_text())["rank_pattern"] == final_pattern
    start = load_file(full / "checkpoint-6" / "adapter_model.safetensors")
    assert start.keys() != a.keys() or any(start[k].shape != a[k].shape or not torch.allclose(start[k], a[k]) for k in a)


def test_adalora_reallocates_rank(workspace, tmp_path, capsys, recwarn):
    summary = train(workspace, tmp_path / "ada", "--use_adalora", "True", "--max_steps", "12",
                    "--adalora_init_r", "6", "--adalora_target_r", "2", "--plot", "False")
    ranks = [rank for _, rank in summary["adalora_rank_history"]]
    assert len(ranks) == 12
    assert ranks[-1] < ranks[0]
    # Modules pruned to rank 0 are reported by us, not as PEFT's "unsharded DeepSpeed" false alarm,
    # and the saved adapter still merges.
    assert "AdaLoRA has pruned" in capsys.readouterr().out
    assert not [w for w in recwarn if "invalid shape" in str(w.message)]
    assert cli_main(["merge", str(tmp_path / "ada"), str(tmp_path / "merged")]) == 0


def test_adalora_training_loss_includes_the_orthogonal_regulariser(workspace, tmp_path):
    """PEFT adds orth_reg_weight (0.5) * R only in AdaLoraModel.forward, which the engine bypasses."""
    out = tmp_path / "ada_reg"
    train(workspace, out, "--use_adalora", "True", "--max_steps", "2", "--alpha", "0.7", "--plot", "False")
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    rows = [row for row in state["log_history"] if "loss" in row]
    assert len(rows) == 2
    for row in rows:
        assert row["orth_reg"] > 0.1
        orpo = row["nll_loss"] - 0.7 * row["log_odds_ratio"]  # log_odds_ratio is -L_OR
        assert row["loss"] == pytest.approx(orpo + 0.5 * row["orth_reg"], rel=1e-5)


def test_lora_training_loss_has_no_orthogonal_regulariser(workspace, tmp_path):
    out = tmp_path / "lora_reg"
    train(workspace, out, "--use_adalora", "False", "--max_steps", "1", "--plot", "False")  # default --alpha 0.1
    history = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())["log_history"]
    row = next(r for r in history if "loss" in r)
    assert "orth_reg" not in row
    assert row["loss"] == pytest.approx(row["nll_loss"] - 0.1 * row["log_odds_ratio"], rel=1e-5)


def test_full_finetuning_with_frozen_encoder_and_cache(workspace, tmp_path):
    out = tmp_path / "full_ft"
    summary = train(workspace, out, "--peft", "none", "--freeze_encoder", "True", "--encoder_cache", "memory", "--checkpoint_decoder", "True",
                    "--num_train_epochs", "2", "--learning_rate", "1e-4", "--plot", "False")
    assert summary["global_step"] == 6
    weights = load_file(out / "model.safetensors")
    original = load_file(workspace["model"] / "model.safetensors")
    name = "model.encoder.layers.0.fc1.weight"
    torch.testing.assert_close(weights[name], original[name])  # frozen
    name = "model.decoder.layers.0.fc1.weight"
    assert not torch.allclose(weights[name], original[name])  # trained


def _first_logged_loss(output: Path) -> float:
    state = json.loads(sorted(output.glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    return next(row["loss"] for row in state["log_history"] if "loss" in row)


def test_bf16_mixed_precision_trains_on_cpu(workspace, tmp_path, capsys):
    common = ("--use_adalora", "False", "--max_steps", "2", "--plot", "False")
    train(workspace, tmp_path / "fp32", *common)
    summary = train(workspace, tmp_path / "bf16", *common, "--bf16", "True")
    assert "bf16 mixed precision instead of the default fp16" in capsys.readouterr().out
    assert summary["global_step"] == 2
    fp32_loss, bf16_loss = _first_logged_loss(tmp_path / "fp32"), _first_logged_loss(tmp_path / "bf16")
    assert bf16_loss != fp32_loss  # autocast ran: same seed and data, bf16 rounding
    assert bf16_loss == pytest.approx(fp32_loss, rel=1e-2)


def test_config_file_and_command_line_override(workspace, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"base_model: {workspace['model']}\ntrain_data: {workspace['train']}\nalpha: 0.3\n"
                      "learning_rate: 0.01\nuse_adalora: false\n")
    model_args, data_args, orpo = parse_args(["--config", str(config), "--learning_rate", "0.002",
                                              "--output_dir", str(tmp_path)])
    assert orpo.alpha == 0.3 and orpo.learning_rate == 0.002
    assert model_args.peft_method == "lora" and data_args.train_data == str(workspace["train"])


def test_classic_defaults_and_boolean_forms(tmp_path):
    model_args, data_args, orpo = parse_args(["--output_dir", str(tmp_path), "--fp16", "False", "--use_adalora"])
    assert model_args.base_model == "openai/whisper-tiny" and model_args.peft_method == "adalora"
    assert data_args.language is None and data_args.task == "transcribe"
    assert (data_args.min_audio_len, data_args.max_audio_len) == (0.5, 30.0)
    assert (orpo.learning_rate, orpo.num_train_epochs, orpo.per_device_train_batch_size) == (1e-3, 3, 8)
    assert (orpo.warmup_steps, orpo.fp16) == (50, False)


def test_defaults_are_lora_alpha_0_1_and_fp32_weights(tmp_path):
    """The documented runs (docs/results.md) use LoRA and alpha 0.1, as do the ORPO paper and TRL."""
    model_args, _, orpo = parse_args(["--output_dir", str(tmp_path)])
    assert model_args.peft_method == "lora" and not model_args.use_adalora
    assert orpo.alpha == 0.1
    assert model_args.model_dtype == "float32"


def test_missing_model_path_is_one_clear_error(workspace, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        train(workspace, tmp_path / "x", "--base_model", str(tmp_path / "no-such-model"))


def test_encoder_cache_needs_frozen_encoder(workspace, tmp_path):
    with pytest.raises(UserInputError, match="freeze_encoder"):
        train(workspace, tmp_path / "x", "--encoder_cache", "memory", "--max_steps", "1")


REFUSED_ATTENTION = ["flex_attention", "flash_attention_2", "flash_attention_3", "bogus"]


@pytest.mark.parametrize("value", REFUSED_ATTENTION)
def test_attention_without_block_mask_support_is_refused_before_loading(tmp_path, capfd, value):
    # A missing manifest and model: the option must be refused before either is looked at.
    code = cli_main(["train", "--attn_implementation", value, "--train_data", str(tmp_path / "none.jsonl"),
                     "--base_model", str(tmp_path / "no-model"), "--output_dir", str(tmp_path)])
    err = capfd.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"--attn_implementation {value}" in err and "sdpa" in err


def test_8bit_with_frozen_encoder_is_refused_before_loading(tmp_path, capfd):
    code = cli_main(["train", "--use_8bit", "True", "--freeze_encoder", "True", "--train_data",
                     str(tmp_path / "none.jsonl"), "--base_model", str(tmp_path / "no-model"), "--output_dir", str(tmp_path)])
    err = capfd.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--use_8bit" in err and "--freeze_encoder" in err


@pytest.mark.parametrize("value", ["float7", "int8"])
def test_bad_model_dtype_is_refused(tmp_path, capfd, value):
    code = cli_main(["train", "--model_dtype", value, "--train_data", str(tmp_path / "none.jsonl"),
                     "--output_dir", str(tmp_path)])
    err = capfd.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--model_dtype" in err


def test_saved_adapter_names_the_model_the_user_gave(workspace, tmp_path, monkeypatch):
    """`tiny.en` is converted into a cache folder; the adapter must say `tiny.en`, not that folder."""
    import shutil

    from rlhf_asr.model.loading import resolve_adapter_base

    cache = tmp_path / "cache"
    shutil.copytree(workspace["model"], cache / "whisper-tiny.en")  # stands in for the converted weights
    monkeypatch.setenv("RLHF_ASR_CACHE", str(cache))
    out = tmp_path / "portable"
    train(workspace, out, "--base_model", "tiny.en", "--max_steps", "1", "--plot", "False", "--save_strategy", "no")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny.en"
    assert (out / "preprocessor_config.json").is_file()  # what CTranslate2's converter and faster-whisper read
    # On another machine the name resolves to that machine's own copy.
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "elsewhere"))
    shutil.copytree(workspace["model"], tmp_path / "elsewhere" / "whisper-tiny.en")
    assert resolve_adapter_base(out) == str(tmp_path / "elsewhere" / "whisper-tiny.en")
# --- languages: never guessed -------------------------------------------------------------------


def write_rows(folder: Path, name: str, rows: list[dict]) -> Path:
    """A preference manifest of `rows` (chosen, rejected and optional language), one tone each."""
    lines = []
    for i, row in enumerate(rows):
        write_tone(folder / "audio" / f"{name}{i}.wav", 1.0, 300 + 50 * i, seed=i)
        lines.append(json.dumps({"audio": {"path": f"audio/{name}{i}.wav"}, "duration": 1.0, **row}))
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multilingual")
    return {"model": make_tiny_whisper_dir(folder, "base"), "root": folder}


def cli_train(capsys, model: Path, manifest: Path, output: Path, *extra: str) -> tuple[int, str]:
    code = cli_main(["train", "--base_model", str(model), "--train_data", str(manifest), "--output_dir", str(output),
                     "--report_to", "none", "--max_steps", "1", *extra])
    return code, capsys.readouterr().err


def test_multilingual_rows_without_language_stop_and_are_named(multilingual, capsys):
    rows = [{"chosen": "the cat", "rejected": "the hat", "language": "en"}] + [
        {"chosen": f"word {i}", "rejected": f"ward {i}"} for i in range(4)
    ]
    manifest = write_rows(multilingual["root"], "nolang", rows)
    code, err = cli_train(capsys, multilingual["model"], manifest, multilingual["root"] / "out")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    named = "(nolang.jsonl:2, nolang.jsonl:3, nolang.jsonl:4 and 1 more)"
    assert f'nolang.jsonl: 4 row(s) have no "language" {named}' in err
    assert "--language" in err and "<|zh|>" not in err


def test_unknown_language_option_on_english_only_model_is_one_line(workspace, tmp_path, capsys):
    code, err = cli_train(capsys, workspace["model"], workspace["train"], tmp_path / "out", "--language", "Klingon")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--language: unknown language 'Klingon'" in err


def test_control_token_in_a_transcript_is_one_line_naming_the_row(workspace, tmp_path, capsys):
    rows = [{"chosen": "the cat sat", "rejected": "the cat <|endoftext|> sat"}, {"chosen": "a b", "rejected": "a c"}]
    manifest = write_rows(tmp_path, "control", rows)
    code, err = cli_train(capsys, workspace["model"], manifest, tmp_path / "out")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "control.jsonl:1: transcript contains the Whisper control token '<|endoftext|>'" in err


def test_lone_surrogate_in_a_transcript_is_one_line_naming_the_row(workspace, tmp_path, capsys):
    manifest = tmp_path / "surrogate.jsonl"
    write_tone(tmp_path / "a.wav", 1.0)
    good = {"audio": {"path": "a.wav"}, "duration": 1.0, "chosen": "a b", "rejected": "a c"}
    bad = {**good, "rejected": "a \ud800 c"}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")  # json writes the escape \ud800
    code, err = cli_train(capsys, workspace["model"], manifest, tmp_path / "out")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "surrogate.jsonl:2: transcript has a character that is not valid Unicode text" in err


def _data_args(**options):
    from rlhf_asr.trainer.config import DataArguments

    return DataArguments(**{"min_audio_len": 0.1, **options})


def test_row_language_wins_and_language_option_fills_the_rest(multilingual):
    from rlhf_asr.data.tokens import TranscriptEncoder
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.run import build_dataset, default_language

    rows = [{"chosen": "le chat", "rejected": "le chien", "language": "French"},
            {"chosen": "el gato", "rejected": "el pato"}]
    manifest = write_rows(multilingual["root"], "mixed", rows)
    processor = load_processor(str(multilingual["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    data_args = _data_args(language="es")
    language = default_language(data_args, encoder)
    dataset, _ = build_dataset(str(manifest), data_args, processor, encoder, language=language)
    ids = processor.tokenizer.convert_tokens_to_ids
    assert [pair[0].ids[1] for pair in dataset.pairs] == [ids("<|fr|>"), ids("<|es|>")]
    assert all(pair[1].ids[1] == pair[0].ids[1] for pair in dataset.pairs)
    # Cantonese came with large-v3's tokenizer: Whisper knows the name, this tokenizer has no token
    assert "yue" not in encoder.known_languages()
    with pytest.raises(UserInputError, match="--language Cantonese: this model's tokenizer has no language token"):
        default_language(_data_args(language="Cantonese"), encoder)


def test_row_language_on_english_only_model_is_reported_once_with_the_count(workspace, tmp_path, capsys):
    from rlhf_asr.data.tokens import TranscriptEncoder
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.run import build_dataset

    rows = [{"chosen": f"le chat {i}", "rejected": f"le chien {i}", "language": "fr"} for i in range(3)]
    rows += [{"chosen": "the cat", "rejected": "the hat", "language": "en"}, {"chosen": "a b", "rejected": "a c"}]
    manifest = write_rows(tmp_path, "french", rows)
    processor = load_processor(str(workspace["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    dataset, _ = build_dataset(str(manifest), _data_args(), processor, encoder)
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "English-only model" in line]
    assert len(notes) == 1 and "3 row(s)" in notes[0] and "fr (3)" in notes[0]
    assert all(len(pair[0].ids) and pair[0].ids[1] == encoder.no_timestamps for pair in dataset.pairs)


def test_eval_wer_decodes_each_row_in_its_own_language(multilingual, monkeypatch):
    """--eval_wer used to decode every row with --language: the prompts must carry each row's token."""
    from rlhf_asr.evaluation import evaluate
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.run import wer_evaluator
    from rlhf_asr.trainer.config import ORPOConfig
    from whisper_fixtures import make_tiny_model

    rows = [
        {"chosen": "le chat", "rejected": "le chien", "language": "fr"},
        {"chosen": "der Hund", "rejected": "die Hand", "language": "de"},
        {"chosen": "the cat", "rejected": "the hat", "language": "en"},
        {"chosen": "el gato", "rejected": "el pato"},
    ]
    manifest = write_rows(multilingual["root"], "eval", rows)
    model, processor = make_tiny_model("base", max_length=4)
    prompts = []
    decode = evaluate.decode_encoded

    def spy(model, processor, hidden, prefixes, **options):
        prompts.extend(prefixes)
        return decode(model, processor, hidden, prefixes, **options)

    monkeypatch.setattr(evaluate, "decode_encoded", spy)
    config = ORPOConfig(output_dir=str(multilingual["root"] / "o"), eval_wer=True, report_to="none", fp16=False)
    data_args = _data_args(test_data=str(manifest))
    scorer = wer_evaluator(load_processor(str(multilingual["model"])), data_args, config, "zh")
    metrics = scorer(model)
    ids = processor.tokenizer.convert_tokens_to_ids
    assert [prompt[1] for prompt in prompts] == [ids("<|fr|>"), ids("<|de|>"), ids("<|en|>"), ids("<|zh|>")]
    assert "wer" in metrics
# ---- encoder cache: keyed by audio and model, never by row position ----

CACHED = ("--use_adalora", "False", "--freeze_encoder", "True", "--plot", "False", "--save_strategy", "no")


@pytest.fixture(scope="module")
def other_audio(workspace):
    """Manifests whose rows hold other audio than the training manifest's rows at the same positions."""
    root = workspace["root"]
    return {
        "train": write_manifest(root, "other_train", PAIRS, tone=10),
        "test": write_manifest(root, "other_test", PAIRS[:2], tone=20),
        "model": make_tiny_whisper_dir(root, seed=1),
    }


def train_with_cache(workspace, output: Path, *extra: str):
    """(summary, cache): the run's cache is made as `rlhf-asr train` makes it, kept to count hits."""
    model_args, data_args, config = parse_args(train_argv(workspace, output, *extra))
    cache = make_encoder_cache(config, model_args, data_args)
    return run_training(model_args, data_args, config, encoder_cache=cache), cache


def test_evaluation_with_encoder_cache_equals_evaluation_without(workspace, other_audio, tmp_path):
    # Row i of the test set is other audio than training row i: it must never read that row's output.
    common = (*CACHED, "--max_steps", "6", "--test_data", str(other_audio["test"]),
              "--eval_strategy", "steps", "--eval_steps", "3")
    cached, cache = train_with_cache(workspace, tmp_path / "cached", *common, "--encoder_cache", "memory")
    plain = train(workspace, tmp_path / "plain", *common)
    # Epoch 1 and the first evaluation compute everything (6 + 2 misses); epoch 2 and the second
    # evaluation read their own entries (6 + 2 hits), none of the other split's.
    assert (cache.misses, cache.hits) == (8, 8)
    # A random tiny model hardly attends to its audio (a 1 s clip is 1/30 of the window), so the
    # loss barely moves with the wrong encoder output; the same computations give the same bits.
    assert cached["final_eval"]["eval_loss"] == plain["final_eval"]["eval_loss"]
    assert cached["train_loss"] == plain["train_loss"]


def test_disk_encoder_cache_is_reused_only_for_the_same_audio_and_model(workspace, other_audio, tmp_path):
    out = tmp_path / "same_folder"
    one_epoch = (*CACHED, "--max_steps", "3", "--encoder_cache", "disk")
    _, first = train_with_cache(workspace, out, *one_epoch)
    assert (first.hits, first.misses) == (0, 6)
    # Another manifest (other audio) into the same output folder: nothing of the first run is read.
    other, second = train_with_cache(workspace, out, *one_epoch, "--train_data", str(other_audio["train"]))
    assert second.hits == 0
    uncached = train(workspace, tmp_path / "fresh", *CACHED, "--max_steps", "3", "--train_data", str(other_audio["train"]))
    assert other["train_loss"] == uncached["train_loss"]
    # Another model on the first run's audio: misses too.
    _, third = train_with_cache(workspace, out, *one_epoch, "--base_model", str(other_audio["model"]))
    assert third.hits == 0
    # The same audio through the same model: every output comes from the first run's files.
    _, fourth = train_with_cache(workspace, out, *one_epoch)
    assert (fourth.hits, fourth.misses) == (6, 0)


# ---- gradient checkpointing and untested parallel back ends ----


def test_gradient_checkpointing_trains_like_without(workspace, tmp_path):
    common = ("--use_adalora", "False", "--max_steps", "2", "--plot", "False", "--save_strategy", "no")
    plain = train(workspace, tmp_path / "plain", *common)
    checkpointed = train(workspace, tmp_path / "gc", *common, "--gradient_checkpointing", "True")
    assert checkpointed["global_step"] == 2
    assert checkpointed["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    a, b = load_file(tmp_path / "plain" / "adapter_model.safetensors"), load_file(tmp_path / "gc" / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
@pytest.mark.parametrize("option", [["--deepspeed", "ds.json"], ["--fsdp", "full_shard"], ["--fsdp_config", "fsdp.json"]])
def test_deepspeed_and_fsdp_are_refused_before_loading(tmp_path, capsys, option):
    for name in ("ds.json", "fsdp.json"):
        (tmp_path / name).write_text("{}")
    option = [option[0], str(tmp_path / option[1])] if option[1].endswith(".json") else option
    argv = ["train", "--train_data", str(tmp_path / "missing.jsonl"), "--base_model", str(tmp_path / "no-model"),
            "--output_dir", str(tmp_path / "out"), *option]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and option[0] in lines[0] and "not supported" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("variable, name", [("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_FSDP", "FSDP")])
def test_accelerate_launch_with_deepspeed_or_fsdp_is_refused(tmp_path, capsys, monkeypatch, variable, name):
    monkeypatch.setenv(variable, "true")
    assert cli_main(["train", "--train_data", str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and name in err and variable in err
