"""The mixed test manifest of this measurement: 8 espeak-ng sentences and 8 non-speech clips.

Run from this folder; writes audio/ (not committed) and mixed.asr.jsonl. Seeded: same clips each run.
"""

import json
from pathlib import Path

import numpy as np
import soundfile

from rlhf_asr.data.synth_audio import synthesize
from rlhf_asr.studies.corpus import load_sentences

RATE = 16000
rng = np.random.default_rng(0)
audio, rows = Path("audio"), []
audio.mkdir(exist_ok=True)
for i, text in enumerate(load_sentences(8, seed=3)):
    seconds = synthesize(text, audio / f"speech{i}.wav")
    rows.append({"audio": {"path": f"audio/speech{i}.wav"}, "duration": round(seconds, 3), "sentence": text})


def colored(n: int, exponent: float) -> np.ndarray:
    """Noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit peak."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.maximum(np.arange(len(spectrum)), 1) ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / np.abs(noise).max()


def at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))


t = np.arange(5 * RATE) / RATE
clips = {
    "silence": np.zeros(3 * RATE),
    "white_-40dB": at_dbfs(colored(4 * RATE, 0), -40),
    "pink_-30dB": at_dbfs(colored(6 * RATE, 1), -30),
    "brown_-25dB": at_dbfs(colored(5 * RATE, 2), -25),
    "tone_440Hz": 0.1 * np.sin(2 * np.pi * 440 * t),
    "hum_50Hz": 0.05 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3)),
    "chord_C": 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
    "white_-20dB_10s": at_dbfs(colored(10 * RATE, 0), -20),
}
for name, x in clips.items():
    soundfile.write(audio / f"{name}.wav", x.astype(np.float32), RATE, subtype="PCM_16")
    rows.append({"audio": {"path": f"audio/{name}.wav"}, "duration": len(x) / RATE, "sentence": ""})
Path("mixed.asr.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
