"""Text normalisation before scoring, so WER counts recognition errors rather than style.

Whisper writes "Mr. Smith paid twenty dollars." where a reference may say "mister smith paid
$20": without normalisation such rows dominate the error rate. We follow the Whisper paper:
English goes through `EnglishTextNormalizer` (casing, punctuation, contractions, numbers,
British -> American spelling), every other language through `BasicTextNormalizer` (casing,
punctuation, bracketed asides).

Spelling: the British -> American map lives in `normalizer.json`, which ships with hub
tokenizers but not with transformers itself. When the model folder has it (the tokenizer's
`english_spelling_normalizer`), pass it as `english_spelling`; otherwise English is normalised
with an empty map: everything but the spelling step still applies, so "colour" and "color"
then count as different words.

Character languages (zh, yue, ja, ko, th) are scored by CER. Their normaliser keeps combining
marks (Whisper's basic normaliser turns them into spaces, which would break Thai vowels) and
only drops punctuation and symbols; Chinese is also mapped traditional -> simplified when the
`opencc` module (`pip install opencc-python-reimplemented`) is installed.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Mapping
from functools import lru_cache

from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

from rlhf_asr.data.language import normalize_language

CER_LANGUAGES = frozenset({"zh", "yue", "ja", "ko", "th"})
_CHINESE = frozenset({"zh", "yue"})
_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\(([^)]+?)\)")
# id(map) -> (map, normaliser): holding the map keeps its id from being reused by another dict.
_english_cache: dict[int, tuple[Mapping | None, EnglishTextNormalizer]] = {}


def language_code(language: str | None) -> str | None:
    """'English' / 'zh-TW' / 'ZH' / 'en_US' -> 'en' / 'zh' / 'zh' / 'en'; None stays None."""
    if language is None or not str(language).strip():
        return None
    try:
        return normalize_language(str(language))
    except ValueError:
        return re.split(r"[-_]", str(language).strip().lower(), maxsplit=1)[0]


def uses_cer(language: str | None) -> bool:
    """True for languages written without spaces between words, where WER is meaningless."""
    return language_code(language) in CER_LANGUAGES


def english_spelling_from(processor_or_tokenizer) -> dict | None:
    """The British -> American map a tokenizer loaded from `normalizer.json`, if any."""
    tokenizer = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    mapping = getattr(tokenizer, "english_spelling_normalizer", None)
    return mapping if isinstance(mapping, dict) and mapping else None


def normalize_text(text: str, language: str | None = None, *, english_spelling: Mapping | None = None) -> str:
    """Normalised `text` for scoring; words separated by single spaces, no outer spaces.

    `language` None means English (the language of English-only checkpoints).
    """
    code = language_code(language) or "en"
    if code == "en":
        return _english(english_spelling)(text).strip()
    if code in CER_LANGUAGES:
        return _character_language(text, code)
    return _basic()(text).strip()


def _english(spelling: Mapping | None) -> EnglishTextNormalizer:
    key = id(spelling) if spelling else 0
    if key not in _english_cache:
        _english_cache[key] = (spelling, EnglishTextNormalizer(dict(spelling or {})))
    return _english_cache[key][1]


@lru_cache(maxsize=1)
def _basic() -> BasicTextNormalizer:
    return BasicTextNormalizer()


def _character_language(text: str, code: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if code in _CHINESE:
        text = to_simplified(text)
    text = _BRACKETED.sub("", text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese with opencc; unchanged (one warning) without it."""
    converter = _opencc()
    return converter.convert(text) if converter is not None else text


@lru_cache(maxsize=1)
def _opencc():
    try:
        import opencc  # opencc-python-reimplemented (pure Python) or the opencc binding
    except ImportError:
        warnings.warn(
            "opencc is not installed: Chinese is scored without traditional -> simplified conversion "
            "(pip install opencc-python-reimplemented)",
            stacklevel=3,
        )
        return None
    for config in ("t2s", "t2s.json"):  # the two packages name the config differently
        try:
            return opencc.OpenCC(config)
        except Exception:  # unknown config name in this flavour of the package
            continue
    warnings.warn("opencc is installed but has no t2s config; Chinese is not converted", stacklevel=3)
    return None
