"""The model card (`model/card.py`): real facts, front matter the hub reads, no template placeholders."""

from __future__ import annotations

from dataclasses import replace

from huggingface_hub import ModelCard

from rlhf_asr.model.card import CardFacts, base_hub_id, base_license, model_card, write_model_card

FACTS = CardFacts(
    base_model="tiny.en",
    base_is_folder=False,
    library="peft",
    peft="lora",
    lora_r=32,
    lora_alpha=64,
    target_modules="q_proj,v_proj",
    alpha=0.1,
    epochs=3,
    learning_rate=1e-3,
    steps=72,
    batch_size=8,
    rejected_scope="all",
    freeze_encoder=True,
    task="transcribe",
    train_pairs=186,
    train_pairs_skipped=2,
    test_pairs=40,
    languages=("en",),
    wer_before=0.379,
    wer_after=0.267,
    wer_rows=40,
)


def test_card_states_the_run_and_the_hub_reads_its_front_matter(tmp_path):
    path = write_model_card(tmp_path, FACTS)
    card = ModelCard.load(path)  # huggingface_hub's parser, as the hub reads it
    assert card.data.base_model == "openai/whisper-tiny.en"
    assert card.data.library_name == "peft" and card.data.license == "mit" and card.data.language == ["en"]
    assert {"lora", "orpo", "base_model:adapter:openai/whisper-tiny.en"} <= set(card.data.tags)
    text = card.text
    for fact in ("186 preference pairs", "2 skipped", "40 held-out pairs", "37.9%", "26.7%", "rank 32", "alpha 64"):
        assert fact in text, fact
    assert "MIT" in text and "frozen" in text


def test_no_template_placeholders_and_unmeasured_wer_is_said():
    text = model_card(replace(FACTS, wer_before=None, wer_after=None, test_pairs=None, wer_rows=None))
    assert "[More Information Needed]" not in text and "{{" not in text and "}}" not in text
    assert text.count("not evaluated") == 2 and "no held-out set" in text


def test_local_base_folder_has_no_hub_link_and_no_guessed_licence():
    text = model_card(replace(FACTS, base_model="runs/my-whisper", base_is_folder=True, languages=("de", "en")))
    card = ModelCard(text)
    assert card.data.base_model is None and card.data.license is None and card.data.language == ["de", "en"]
    assert "see the base model's licence" in text


def test_merged_and_full_models_are_transformers_folders():
    merged = ModelCard(model_card(replace(FACTS, library="transformers", merged=True)))
    assert merged.data.library_name == "transformers"
    assert not any(tag.startswith("base_model:adapter") for tag in merged.data.tags)
    assert "merged model" in merged.text and 'pipeline("automatic-speech-recognition"' in merged.text
    full = model_card(replace(FACTS, library="transformers", peft="none", lora_r=None, lora_alpha=None))
    assert "full fine-tuning" in full and "None" not in full


def test_an_evaluation_before_the_last_step_is_named():
    assert "| after training | 26.7% |" in model_card(replace(FACTS, wer_after_step=72))
    assert "at step 50 of 72 (the last evaluation) | 26.7%" in model_card(replace(FACTS, wer_after_step=50))


def test_base_names():
    assert base_hub_id("base") == "openai/whisper-base"
    assert base_hub_id("openai/whisper-small") == "openai/whisper-small"
    assert base_hub_id("/data/models/whisper") is None and base_hub_id("./runs/x") is None
    assert base_hub_id("runs/x", is_folder=True) is None and base_hub_id("runs/x") == "runs/x"
    assert base_license("openai/whisper-large-v3") == "mit" and base_license("someone/whisper-de") is None


def test_card_names_the_objective_and_its_weights():
    orpo = model_card(FACTS)
    assert "| objective `--loss` | orpo |\n| ORPO `--alpha` | 0.1 |" in orpo
    weights = (("beta", 0.1), ("label_smoothing", 0.0), ("rpo_alpha", 0.0))
    dpo = model_card(replace(FACTS, loss="dpo", loss_weights=weights))
    assert "# Whisper fine-tuned with DPO from tiny.en" in dpo and "Rafailov et al. 2023" in dpo
    assert "| DPO weights | `--beta` 0.1, `--label_smoothing` 0, `--rpo_alpha` 0 |" in dpo
    assert "ORPO" not in dpo and "- dpo\n" in dpo  # the hub tag names the objective
    sft = model_card(replace(FACTS, loss="sft"))
    assert "# Whisper fine-tuned with supervised fine-tuning from tiny.en" in sft and " weights |" not in sft


def test_card_says_what_rows_the_run_read():
    """Pairs or K-best rows (make-pairs --nbest): the card's sentence and counts name the one trained on."""
    pairs = model_card(FACTS)
    assert "on pairs of a preferred and a rejected transcript of the same audio" in pairs
    assert "preference pairs" in pairs and "K-best" not in pairs
    for loss in ("mwer", "dpo"):
        kbest = model_card(replace(FACTS, loss=loss, kbest=True))
        assert "on K-best rows: the reference and the model's own hypotheses" in kbest
        assert f"- **Training data:** {FACTS.train_pairs} K-best rows" in kbest and "pairs of a preferred" not in kbest


def test_silence_section_says_which_decoders_each_nospeech_target_serves():
    """`both` lets <|endoftext|> come first but trains the <|nospeech|> path: the card must not promise the
    pipeline silence for it (the silence study measured it looping as `nospeech` does)."""
    cards = {
        target: model_card(
            replace(FACTS, no_speech_pairs=40, nospeech_target=target, empty_output=target != "nospeech")
        )
        for target in ("eot", "nospeech", "both")
    }
    assert "can write nothing on audio without speech" in cards["eot"] and "<|nospeech|>" not in cards["eot"]
    for target in ("nospeech", "both"):
        assert "can write nothing" not in cards[target] and "`no_speech_threshold`" in cards[target], target
    assert "may still write on silence" in cards["both"]
    assert "suppress `<|endoftext|>` as the first token" in cards["nospeech"]
    assert "--nospeech_target eot" in cards["both"]
