"""Languages in training (`trainer/run.py` with `data/manifest.py`): never guessed, named when missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.errors import UserInputError
from whisper_fixtures import make_tiny_whisper_dir, write_tone


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
    code = cli_main(
        [
            "train",
            "--base_model",
            str(model),
            "--train_data",
            str(manifest),
            "--output_dir",
            str(output),
            "--report_to",
            "none",
            "--max_steps",
            "1",
            *extra,
        ]
    )
    return code, capsys.readouterr().err


def one_error_line(err: str) -> bool:
    """Data errors come after the manifest's progress lines: one error line, the rest the log's own."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("rlhf-asr train: error: ")]
    return (
        "Traceback" not in err
        and len(errors) == 1
        and all(line in errors or line.startswith("[rlhf-asr] ") for line in lines)
    )


def test_multilingual_rows_without_language_stop_and_are_named(multilingual, capsys):
    rows = [{"chosen": "the cat", "rejected": "the hat", "language": "en"}] + [
        {"chosen": f"word {i}", "rejected": f"ward {i}"} for i in range(4)
    ]
    manifest = write_rows(multilingual["root"], "nolang", rows)
    code, err = cli_train(capsys, multilingual["model"], manifest, multilingual["root"] / "out")
    assert code == 2 and one_error_line(err)
    named = "(nolang.jsonl:2, nolang.jsonl:3, nolang.jsonl:4 and 1 more)"
    assert f'nolang.jsonl: 4 row(s) have no "language" {named}' in err
    assert "--language" in err and "<|zh|>" not in err


def test_unknown_language_option_on_english_only_model_is_one_line(workspace, tmp_path, capsys):
    code, err = cli_train(capsys, workspace["model"], workspace["train"], tmp_path / "out", "--language", "Klingon")
    assert code == 2 and one_error_line(err)
    assert "--language: unknown language 'Klingon'" in err


def test_control_token_in_a_transcript_is_one_line_naming_the_row(workspace, tmp_path, capsys):
    rows = [{"chosen": "the cat sat", "rejected": "the cat <|endoftext|> sat"}, {"chosen": "a b", "rejected": "a c"}]
    manifest = write_rows(tmp_path, "control", rows)
    code, err = cli_train(capsys, workspace["model"], manifest, tmp_path / "out")
    assert code == 2 and one_error_line(err)
    assert "control.jsonl:1: transcript contains the Whisper control token '<|endoftext|>'" in err


def test_lone_surrogate_in_a_transcript_is_a_bad_row_named_by_line(workspace, tmp_path, capsys):
    """Refused by the readers' character rule (data/text_rules.py), as every bad row: listed, skippable."""
    manifest = tmp_path / "surrogate.jsonl"
    write_tone(tmp_path / "a.wav", 1.0)
    good = {"audio": {"path": "a.wav"}, "duration": 1.0, "chosen": "a b", "rejected": "a c"}
    bad = {**good, "rejected": "a \ud800 c"}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")  # json writes the escape \ud800
    code, err = cli_train(capsys, workspace["model"], manifest, tmp_path / "out")
    assert code == 2 and "Traceback" not in err
    assert "surrogate.jsonl:2: field 'rejected' holds a lone surrogate U+D800 at character 2 (not valid UTF-8)" in err
    assert "--skip_invalid_rows" in err


def _data_args(**options):
    from rlhf_asr.trainer.config import DataArguments

    return DataArguments(**{"min_audio_len": 0.1, **options})


def test_row_language_wins_and_language_option_fills_the_rest(multilingual):
    from rlhf_asr.data.tokens import TranscriptEncoder
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.run import build_dataset, default_language

    rows = [
        {"chosen": "le chat", "rejected": "le chien", "language": "French"},
        {"chosen": "el gato", "rejected": "el pato"},
    ]
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


def test_row_language_on_english_only_model_is_reported_once_with_the_count(workspace, tmp_path, rlhf_log):
    from rlhf_asr.data.tokens import TranscriptEncoder
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.run import build_dataset

    rows = [{"chosen": f"le chat {i}", "rejected": f"le chien {i}", "language": "fr"} for i in range(3)]
    rows += [{"chosen": "the cat", "rejected": "the hat", "language": "en"}, {"chosen": "a b", "rejected": "a c"}]
    manifest = write_rows(tmp_path, "french", rows)
    processor = load_processor(str(workspace["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    dataset, _ = build_dataset(str(manifest), _data_args(), processor, encoder)
    notes = [r.getMessage() for r in rlhf_log.records if "English-only model" in r.getMessage()]
    assert len(notes) == 1 and "3 row(s)" in notes[0] and "fr (3)" in notes[0]
    assert all(len(pair[0].ids) and pair[0].ids[1] == encoder.no_timestamps for pair in dataset.pairs)


def test_eval_wer_decodes_each_row_in_its_own_language(multilingual, monkeypatch):
    """--eval_wer used to decode every row with --language: the prompts must carry each row's token."""
    from rlhf_asr.evaluation import evaluate
    from rlhf_asr.model.loading import load_processor
    from rlhf_asr.trainer.config import ORPOConfig
    from rlhf_asr.trainer.run import wer_evaluator
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
