"""`--objectives` specs of the objectives study: an objective with changes to its weights or learning rate,
parsed and refused as `train` refuses them, trained with what they say, and reported under their flags."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlhf_asr.errors import UserInputError
from rlhf_asr.studies.options import STUDY_OBJECTIVES, ResultsOptions
from rlhf_asr.studies.results.objective_spec import ObjectiveSpec, parse_spec
from rlhf_asr.studies.results.objectives_report import name_of


def test_a_plain_objective_changes_nothing():
    spec = parse_spec("dpo", STUDY_OBJECTIVES)
    assert spec == ObjectiveSpec("dpo", "dpo") and spec.folder == "dpo"
    assert name_of("dpo") == "DPO (`--loss dpo`)"


def test_a_spec_changes_weights_and_the_learning_rate_and_names_a_safe_folder():
    spec = parse_spec("dpo:rpo_alpha=1,learning_rate=1e-4", STUDY_OBJECTIVES)
    assert (spec.loss, spec.weights, spec.learning_rate) == ("dpo", (("rpo_alpha", 1.0),), 1e-4)
    assert name_of(spec.text) == "DPO (`--loss dpo --rpo_alpha 1 --learning_rate 1e-4`)"
    assert spec.folder == "dpo_rpo_alpha1_learning_rate1e-4"
    assert parse_spec("mwer:reference_in_list=false", STUDY_OBJECTIVES).weights == (("reference_in_list", False),)


@pytest.mark.parametrize(
    "spec, says",
    [
        ("kto", "--objectives kto: choose from sft, orpo, dpo, simpo, mwer"),
        ("dpo:", "nothing after the colon"),
        ("dpo:rpo_alpha", "'rpo_alpha' is not name=value"),
        ("dpo:epochs=3", "'epochs=3' is not name=value with a weight"),
        ("dpo:beta=x", "beta must be a number, not 'x'"),
        ("dpo:beta=nan", "beta must be a finite number"),
        ("dpo:beta=0.2,beta=0.3", "beta is given twice"),
        ("dpo:learning_rate=0", "learning_rate must be > 0"),
        ("dpo:gamma=0.5", "--gamma 0.5: --loss dpo does not read it"),  # the trainer's own refusal
        ("dpo:beta=0", "dpo: beta must be > 0"),  # the objective's range
        ("mwer:reference_in_list=maybe", "reference_in_list must be true or false"),
    ],
)
def test_a_bad_spec_is_one_line_naming_it(spec, says):
    with pytest.raises(UserInputError, match=f"^--objectives {spec}") as error:
        parse_spec(spec, STUDY_OBJECTIVES)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_the_command_refuses_a_bad_spec_before_anything_is_loaded():
    from rlhf_asr.commands import results

    with pytest.raises(UserInputError, match="--objectives dpo:gamma=0.5: --gamma 0.5: --loss dpo does not read it"):
        results.main(["--study", "objectives", "--objectives", "sft", "dpo:gamma=0.5"])
    with pytest.raises(UserInputError, match="--objectives names dpo twice"):
        results.main(["--study", "objectives", "--objectives", "dpo", "sft", "dpo"])
    # DPO, SimPO and MWER alone collapsed: the study tries each with a full-weight NLL term too
    assert {"dpo:rpo_alpha=1", "simpo:cpo_alpha=1", "mwer:ce_weight=1"} <= set(ResultsOptions().objectives)


def test_a_spec_trains_with_its_changes_and_the_trainer_defaults_elsewhere(tmp_path):
    from rlhf_asr.studies.results.objectives import objective_args, objective_weights

    start = SimpleNamespace(base="base", max_steps=7)
    options = ResultsOptions(alpha=0.5, learning_rate=1e-3)  # the study's --alpha is not DPO's to read
    spec = parse_spec("dpo:rpo_alpha=1,learning_rate=1e-4", STUDY_OBJECTIVES)
    _, _, config = objective_args(options, spec, 2, start, tmp_path / "pairs.jsonl", tmp_path / "run")
    assert (config.loss, config.rpo_alpha, config.learning_rate, config.max_steps, config.seed) == (
        "dpo", 1.0, 1e-4, 7, 2
    )  # fmt: skip
    assert objective_weights((None, None, config)) == {"beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": 1.0}
    _, _, plain = objective_args(options, parse_spec("orpo", STUDY_OBJECTIVES), 0, start, "p", tmp_path / "o")
    assert (plain.alpha, plain.learning_rate, plain.rpo_alpha) == (0.1, 1e-3, None)  # ORPO's default alpha


def test_a_spec_is_reported_under_the_train_flags_it_stands_for():
    assert name_of("dpo") == "DPO (`--loss dpo`)"
    assert name_of("dpo:rpo_alpha=1") == "DPO (`--loss dpo --rpo_alpha 1`)"
    assert name_of("simpo:cpo_alpha=1") == "SimPO (`--loss simpo --cpo_alpha 1`)"
    assert name_of("mwer:ce_weight=1") == "MWER (`--loss mwer --ce_weight 1`, K-best rows)"
    assert name_of("mwer:ce_weight=0.1,learning_rate=1e-4") == (
        "MWER (`--loss mwer --ce_weight 0.1 --learning_rate 1e-4`, K-best rows)"
    )
