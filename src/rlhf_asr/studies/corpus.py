"""The studies' synthetic English corpus: shipped sentences spoken by espeak-ng voices, split honestly.

The demo must run offline with real weights and real audio, so its speech is synthesized
(`data/synth_audio.synthesize`). espeak-ng's voices are robotic, which is the point here: Whisper
tiny.en makes enough mistakes on them (docs/results.md: the base model's WER per split) that
preference fine-tuning has something to fix.

Texts are one-sentence fortunes, always the list shipped as `sentences_en.txt` (extracted once
from Debian's `fortunes` with `fortune_sentences`), so no sentence needs numbers or symbols
verbalised, the reference is exactly what was spoken, and every machine gets the same texts for a
seed whether or not `fortunes` is installed there.

The corpus keeps its splits honest: held-out texts never appear in training, and a second
test split is spoken by voices that training never heard.
"""

from __future__ import annotations

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rlhf_asr.data.synth_audio import check_voices, synthesize
from rlhf_asr.errors import UserInputError

# Benign collections only: the ones made of quips and proverbs, not chat logs, ASCII art or jokes
# about groups of people.
FORTUNE_FILES = (
    "fortunes",
    "wisdom",
    "platitudes",
    "science",
    "computers",
    "literature",
    "people",
    "humorists",
    "miscellaneous",
    "work",
    "food",
    "pets",
    "kids",
    "education",
    "love",
    "songs-poems",
    "law",
    "medicine",
    "riddles",
    "tao",
    "sports",
    "magic",
    "paradoxum",
    "pratchett",
    "goedel",
    "startrek",
)
SHIPPED_SENTENCES = "sentences_en.txt"
# One sentence: capital first, letters and light punctuation only, ends in . ! or ?
_SENTENCE = re.compile(r"[A-Z][A-Za-z ,;'\-]*[a-z][.!?]")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")  # spelled out or read as a word: the reference is ambiguous
_AVOID = re.compile(r"\b(man who|sex\w*|naked|drunk\w*|stupid\w*|midget\w*)\b", re.IGNORECASE)  # keep the demo polite


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (`-v`, e.g. "en-us+m3") at a speed in words per minute (`-s`)."""

    name: str
    speed: int

    @property
    def label(self) -> str:
        return f"{self.name}@{self.speed}"


@dataclass(frozen=True)
class Utterance:
    """One synthesized clip. `path` is relative to the corpus folder."""

    text: str
    voice: str
    speed: int
    path: str
    duration: float
    split: str

    def asr_row(self) -> dict:
        return {
            "audio": {"path": self.path},
            "duration": round(self.duration, 3),
            "sentence": self.text,
            "language": "English",
            "voice": self.voice,
            "speed": self.speed,
        }


# ---- texts ----


def clean_sentence(entry: str, min_words: int = 4, max_words: int = 15) -> str | None:
    """`entry` as one speakable sentence, or None when it is not one.

    Rejected: attributions ("-- Author"), several sentences, digits, symbols, acronyms, non-ASCII,
    and anything outside [min_words, max_words], so the spoken audio and its reference agree.
    """
    lines = [line.strip() for line in entry.strip().splitlines()]
    if not lines or any(line.startswith("--") for line in lines):
        return None
    text = re.sub(r"\s+", " ", " ".join(lines))
    if not _SENTENCE.fullmatch(text) or "--" in text or _ACRONYM.search(text) or _AVOID.search(text):
        return None
    if len(re.findall(r"[.!?]", text)) > 1:
        return None
    return text if min_words <= len(text.split()) <= max_words else None


def fortune_sentences(root: Path, min_words: int = 4, max_words: int = 15) -> list[str]:
    """Every usable sentence of the fortunes files under `root`, sorted.

    For maintainers regenerating `sentences_en.txt`; the demo never reads installed fortunes.
    """
    found: set[str] = set()
    for name in FORTUNE_FILES:
        path = Path(root) / name
        if not path.is_file():
            continue
        for entry in path.read_text(encoding="latin-1").split("\n%\n"):
            sentence = clean_sentence(entry, min_words, max_words)
            if sentence:
                found.add(sentence)
    return sorted(found)


def shipped_sentences() -> list[str]:
    """The sentence list that ships with the package (extracted from fortunes)."""
    text = resources.files("rlhf_asr.studies").joinpath(SHIPPED_SENTENCES).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def load_sentences(n: int, seed: int = 0, min_words: int = 4, max_words: int = 15) -> list[str]:
    """`n` distinct shipped sentences, shuffled with `seed`: the same list on every machine."""
    sentences = [s for s in shipped_sentences() if min_words <= len(s.split()) <= max_words]
    if n > len(sentences):
        raise UserInputError(f"asked for {n} sentences, only {len(sentences)} are shipped")
    random.Random(seed).shuffle(sentences)
    return sentences[:n]


# ---- voices and splits ----


def assign_voices(texts: list[str], voices: list[str], speeds: list[int], seed: int) -> list[Voice]:
    """A voice and speed per text: voices in turn (balanced), speeds drawn with `seed`."""
    rng = random.Random(seed)
    order = list(voices)
    rng.shuffle(order)
    return [Voice(order[i % len(order)], rng.choice(speeds)) for i in range(len(texts))]


@dataclass
class Corpus:
    """Splits of a synthetic corpus: "train", "test" (held-out texts, seen voices), "test_voices"
    (the same held-out texts, voices never used in training). Manifests are `<split>.jsonl`."""

    folder: Path
    splits: dict[str, list[Utterance]]

    def manifest(self, split: str) -> Path:
        return self.folder / f"{split}.jsonl"

    def texts(self, split: str) -> list[str]:
        return [u.text for u in self.splits[split]]


def build_corpus(
    folder: str | Path,
    num_train: int,
    num_test: int,
    train_voices: list[str],
    test_voices: list[str],
    speeds: list[int],
    seed: int = 0,
    workers: int = 4,
) -> Corpus:
    """Synthesizes the corpus into `folder` (wav files under `<split>/`) and writes its ASR manifests.

    Texts are split first (train / held-out, disjoint), then voices are assigned; held-out texts
    are spoken twice, once by a training voice and once by a held-out voice (none when
    `test_voices` is empty). A few espeak processes run at once: each is single-threaded.
    """
    folder = Path(folder)
    overlap = set(train_voices) & set(test_voices)
    if overlap:
        raise UserInputError(f"held-out voices must not be training voices: {sorted(overlap)}")
    check_voices(list(dict.fromkeys(train_voices + test_voices)))
    texts = load_sentences(num_train + num_test, seed)
    train_texts, test_texts = texts[:num_train], texts[num_train:]
    plan: dict[str, list[tuple[str, Voice]]] = {
        "train": list(zip(train_texts, assign_voices(train_texts, train_voices, speeds, seed))),
        "test": list(zip(test_texts, assign_voices(test_texts, train_voices, speeds, seed + 1))),
    }
    if test_voices:
        plan["test_voices"] = list(zip(test_texts, assign_voices(test_texts, test_voices, speeds, seed + 2)))
    jobs = [(split, i, text, voice) for split, rows in plan.items() for i, (text, voice) in enumerate(rows)]

    def run(job: tuple[str, int, str, Voice]) -> Utterance:
        split, i, text, voice = job
        relative = f"{split}/{i:04d}.wav"
        duration = synthesize(text, folder / relative, voice.name, voice.speed)
        return Utterance(text, voice.name, voice.speed, relative, duration, split)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = list(pool.map(run, jobs))  # map keeps job order, so rows stay in plan order
    corpus = Corpus(folder, {split: [u for u in done if u.split == split] for split in plan})
    for split, rows in corpus.splits.items():
        write_jsonl(corpus.manifest(split), [u.asr_row() for u in rows])
    return corpus


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


__all__ = [
    "Corpus",
    "Utterance",
    "Voice",
    "build_corpus",
    "clean_sentence",
    "fortune_sentences",
    "load_sentences",
    "shipped_sentences",
    "write_jsonl",
]
