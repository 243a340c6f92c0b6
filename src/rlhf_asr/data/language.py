"""Language names as Whisper spells them: a row's or an option's language, normalised to Whisper's code."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _whisper_tables() -> tuple[dict[str, str], dict[str, str]]:
    # Imported lazily: the tokenizer module costs about a second to import.
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    return LANGUAGES, TO_LANGUAGE_CODE


def normalize_language(value: str) -> str:
    """'English', 'english', 'en' or '<|en|>' -> 'en'. ValueError for names Whisper lacks."""
    languages, to_code = _whisper_tables()
    key = value.strip().lower()
    if key.startswith("<|") and key.endswith("|>"):
        key = key[2:-2]
    if key in languages:
        return key
    if key in to_code:
        return to_code[key]
    raise ValueError(f"unknown language {value!r} (Whisper knows e.g. {', '.join(list(languages)[:8])}, ...)")
