"""The demo's and results' training options, built as dataclasses, equal what `rlhf-asr train` parses from flags."""

from dataclasses import asdict
from pathlib import Path

from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.studies.options import DemoOptions, ResultsOptions, training_args


# The flags the demo recipe used to build and parse (`training_argv`), verbatim.
def _old_argv(options, base, pairs, output):
    return [
        "--base_model",
        str(base),
        "--train_data",
        str(pairs),
        "--output_dir",
        str(output),
        "--peft",
        "lora",
        "--lora_r",
        str(options.lora_r),
        "--lora_alpha",
        str(2 * options.lora_r),
        "--lora_dropout",
        "0",
        "--target_modules",
        "q_proj,k_proj,v_proj,out_proj,fc1,fc2",
        "--freeze_encoder",
        "True",
        "--encoder_cache",
        "none",
        "--language",
        "English",
        "--num_train_epochs",
        str(options.epochs),
        "--learning_rate",
        str(options.learning_rate),
        "--per_device_train_batch_size",
        str(options.batch_size),
        "--warmup_steps",
        "5",
        "--lr_scheduler_type",
        "linear",
        "--alpha",
        str(options.alpha),
        "--seed",
        str(options.seed),
        "--logging_steps",
        "5",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--dataloader_pin_memory",
        "False",
        "--disable_tqdm",
        "True",
    ]


def _same(built, parsed):
    for ours, theirs in zip(built, parsed):
        a, b = (asdict(ours), asdict(theirs)) if not hasattr(ours, "to_dict") else (ours.to_dict(), theirs.to_dict())
        assert a == b


def test_demo_training_args_equal_the_parsed_flags(tmp_path):
    options = DemoOptions(lora_r=4, epochs=2.0, learning_rate=3e-4, batch_size=2, alpha=0.25, seed=7)
    base, pairs, out = Path("base"), tmp_path / "pairs.jsonl", tmp_path / "model"
    _same(training_args(options, base, pairs, out), parse_training_args(_old_argv(options, base, pairs, out)))


def test_results_variant_overrides_equal_the_flags_appended_after(tmp_path):
    """results.py appended --max_steps/--alpha/--rejected_scope/--seed/--plot; the last flag won."""
    from dataclasses import replace

    options = ResultsOptions()
    base, pairs, out = Path("base"), tmp_path / "pairs.jsonl", tmp_path / "run"
    argv = _old_argv(options, base, pairs, out) + [
        "--max_steps",
        "12",
        "--alpha",
        "0.0",
        "--rejected_scope",
        "diverging",
        "--seed",
        "2",
        "--plot",
        "False",
        "--disable_prompt_loss",
        "True",
    ]
    built = training_args(
        replace(options, alpha=0.0, seed=2, disable_prompt_loss=True),
        base,
        pairs,
        out,
        max_steps=12,
        rejected_scope="diverging",
        plot=False,
    )
    _same(built, parse_training_args(argv))


def test_the_older_name_of_completion_only_loss_still_parses_and_reads_from_raw_files():
    from rlhf_asr.commands import demo, results
    from rlhf_asr.studies.options import recorded_options

    for flags in (["--disable_prompt_loss", "False"], ["--no_disable_prompt_loss"], ["--completion_only_loss", "no"]):
        assert demo.parse_args(flags).completion_only_loss is False, flags
        assert results.parse_args(flags)[0].completion_only_loss is False, flags
    assert DemoOptions(disable_prompt_loss=False).completion_only_loss is False
    assert ResultsOptions(disable_prompt_loss=False).completion_only_loss is False
    assert "disable_prompt_loss" not in asdict(ResultsOptions())  # raw files record today's name
    assert recorded_options({"disable_prompt_loss": False, "seed": 1}) == {"completion_only_loss": False, "seed": 1}
