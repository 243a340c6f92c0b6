"""What training leaves behind works anywhere (`trainer/model_out.py`): portable names, the merged folder,
preprocessor_config.json, a real model card, and a hub push that fails up front or uploads the card.

One training run (module fixture) from `tiny.en` (a tiny random model placed in a temporary bundled-model
cache) with --merge_at_end and --push_to_hub against a fake hub; the checks read its output folder.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.utils import filter_repo_objects
from transformers import WhisperForConditionalGeneration, WhisperProcessor

import rlhf_asr.trainer.model_out as model_out
from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.loading import load_for_inference
from rlhf_asr.trainer.model_out import check_model_out
from train_fixtures import PAIRS, train, write_manifest
from whisper_fixtures import make_tiny_whisper_dir

PLACEHOLDERS = ("[More Information Needed]", "{{", "}}")


class FakeHub:
    """Stands in for transformers' `hf_api()`: records each upload and the README it would send."""

    def __init__(self):
        self.uploads: list[dict] = []

    def create_repo(self, name, **kwargs):
        return SimpleNamespace(repo_id=f"someone/{name}")

    def upload_folder(self, folder_path, ignore_patterns=None, run_as_future=False, **kwargs):
        folder = Path(folder_path)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        sent = list(filter_repo_objects(files, ignore_patterns=ignore_patterns))
        readme = (folder / "README.md").read_text() if "README.md" in sent else None
        self.uploads.append({"files": sent, "readme": readme, **kwargs})
        done = Future()
        done.set_result(None)
        return done if run_as_future else SimpleNamespace(commit_url="fake")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_out")
    cache = root / "cache"
    # `tiny.en` resolves to this folder, as the bundled weights resolve to their converted cache folder
    make_tiny_whisper_dir(root).rename(cache.mkdir() or cache / "whisper-tiny.en")
    hub = FakeHub()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_ASR_CACHE", str(cache))
        patch.setattr("transformers.trainer.hf_api", lambda: hub)
        patch.setattr(model_out, "_offline", lambda: False)  # the hub stays offline for everything else
        patch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
        workspace = {"model": "tiny.en", "train": write_manifest(root, "train", PAIRS)}
        workspace["test"] = write_manifest(root, "test", PAIRS[:2], tone=10)
        out = root / "out"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = train(
                workspace,
                out,
                "--num_train_epochs",
                "1",
                "--test_data",
                str(workspace["test"]),
                "--eval_wer",
                "--eval_on_start",
                "--merge_at_end",
                "--push_to_hub",
            )
    return SimpleNamespace(out=out, cache=cache, summary=summary, hub=hub, warnings=[str(w.message) for w in caught])


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_no_file_names_this_machines_cache(run):
    needles = {str(run.cache).encode(), str(run.cache.resolve()).encode()}
    files = _files(run.out)
    assert any(p.name == "training_args.bin" for p in files) and any(p.parent.name == "merged" for p in files)
    leaking = [str(p.relative_to(run.out)) for p in files if any(n in p.read_bytes() for n in needles)]
    assert leaking == []
    adapter_config = (run.out / "adapter_config.json").read_text()
    assert '"base_model_name_or_path": "tiny.en"' in adapter_config
    assert run.summary["base_model"] == "tiny.en" and run.summary["merged_dir"] == "merged"


def test_saving_asks_no_hub_about_the_base_model(run):
    """PEFT's embedding check looked `tiny.en` up on the hub at every save: offline, two warnings each time."""
    assert not [text for text in run.warnings if "tiny.en" in text], run.warnings


def test_preprocessor_config_is_saved_with_adapter_and_merged_model(run):
    for folder in (run.out, run.out / "merged"):
        assert (folder / "preprocessor_config.json").is_file(), folder


def test_merged_folder_loads_plainly_and_matches_the_adapter(run):
    merged_dir = run.out / "merged"
    merged = WhisperForConditionalGeneration.from_pretrained(merged_dir).eval()
    processor = WhisperProcessor.from_pretrained(merged_dir)
    assert not (merged_dir / "adapter_config.json").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_ASR_CACHE", str(run.cache))
        adapted, _ = load_for_inference(run.out)
    base = WhisperForConditionalGeneration.from_pretrained(run.cache / "whisper-tiny.en").eval()
    audio = torch.randn(16000, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    ids = torch.tensor([processor.tokenizer("<|startoftranscript|><|notimestamps|> the cat sat").input_ids])
    with torch.no_grad():
        expected = adapted(input_features=features, decoder_input_ids=ids).logits
        got = merged(input_features=features, decoder_input_ids=ids).logits
        before = base(input_features=features, decoder_input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(before, expected, atol=1e-4)  # training changed the model


def test_model_card_is_real_in_both_folders(run):
    text = (run.out / "README.md").read_text()
    assert not [p for p in PLACEHOLDERS if p in text]
    card = ModelCard(text)
    assert card.data.base_model == "openai/whisper-tiny.en" and card.data.library_name == "peft"
    assert card.data.license == "mit" and card.data.language == ["en"]
    assert "6 preference pairs" in text and "2 held-out pairs" in text and "rank 32" in text
    wer_lines = [line for line in text.splitlines() if line.startswith("| before training") or "| after" in line]
    assert len(wer_lines) == 2 and all("%" in line for line in wer_lines), wer_lines  # --eval_on_start, --eval_wer
    merged = ModelCard((run.out / "merged" / "README.md").read_text())
    assert merged.data.library_name == "transformers" and "merged model" in merged.text


def test_push_uploads_the_card_and_adapter_not_checkpoints(run):
    final = run.hub.uploads[-1]
    assert final["repo_id"] == "someone/out" and final["commit_message"] == "End of training"
    assert {"adapter_model.safetensors", "adapter_config.json", "preprocessor_config.json", "README.md"} <= set(
        final["files"]
    )
    assert not [f for f in final["files"] if f.startswith(("checkpoint-", "merged/"))]
    assert "[More Information Needed]" not in final["readme"] and "ORPO" in final["readme"]


def _options(tmp_path, *extra):
    return parse_training_args(["--train_data", "x.jsonl", "--output_dir", str(tmp_path / "out"), *extra])


def test_push_to_hub_offline_fails_before_loading(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded data or a model before the check")

    monkeypatch.setattr("rlhf_asr.trainer.run.load_processor", no_loading)
    with pytest.raises(UserInputError, match="--push_to_hub needs the network"):
        train(workspace, tmp_path / "out", "--push_to_hub")


def test_push_to_hub_without_token_or_with_disk_cache_fails_up_front(tmp_path, monkeypatch):
    monkeypatch.setattr(model_out, "_offline", lambda: False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    model_args, _, config = _options(tmp_path, "--push_to_hub")
    with pytest.raises(UserInputError, match="needs a Hugging Face token"):
        check_model_out(model_args, config)
    model_args, _, config = _options(tmp_path, "--push_to_hub", "--hub_token", "hf_x", "--encoder_cache", "disk")
    with pytest.raises(UserInputError, match="encoder_cache disk"):
        check_model_out(model_args, config)


def test_merge_at_end_checks(tmp_path):
    model_args, _, config = _options(tmp_path, "--merge_at_end", "--peft", "none")
    with pytest.raises(UserInputError, match="--peft none"):
        check_model_out(model_args, config)
    (tmp_path / "out" / "merged").mkdir(parents=True)
    (tmp_path / "out" / "merged" / "model.safetensors").write_text("earlier run")
    model_args, _, config = _options(tmp_path, "--merge_at_end")
    with pytest.raises(UserInputError, match="already exists"):
        check_model_out(model_args, config)
    model_args, _, config = _options(tmp_path, "--merge_at_end", "--overwrite_output_dir")
    check_model_out(model_args, config)  # replaced at the end of training
