"""Test audio made here: espeak-ng speaks known sentences; sine, noise and silence are edge cases.

Every clip is 16 kHz mono 16-bit PCM WAV (what Whisper eats, and what Chromium's fake audio
capture reads). espeak-ng writes 22.05 kHz; sox resamples (both are Debian packages, see
scripts/install.sh). Clips are generated on demand into a folder, never committed.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.errors import SpeechClipError

SAMPLE_RATE = 16_000
VOICE = "en-us"
WORDS_PER_MINUTE = 150
SENTENCES = {
    "bicycle": "Please find the photos of my red bicycle near the old bridge.",
    "cat": "Show me a picture of a cat sleeping on the sofa.",
    "france": "What is the capital of France?",
    "labels": "Dog, cat, horse, and bird.",
}


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    text: str | None  # the spoken sentence; None for the non-speech edge cases (expected transcript: "")


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM WAV -> float32 samples in [-1, 1), channels averaged. The rate must be 16 kHz."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getframerate() != SAMPLE_RATE:
            raise SpeechClipError(
                f"{path}: need 16-bit PCM at {SAMPLE_RATE} Hz, got {8 * wav.getsampwidth()}-bit at {wav.getframerate()} Hz",
                fix=f"convert it: sox IN -r {SAMPLE_RATE} -c 1 -b 16 OUT.wav",
            )
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, wav.getnchannels())
    return (pcm.astype(np.float32) / 32768.0).mean(axis=1)


def write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def missing_tools() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def speak(text: str, dest: Path) -> Path:
    """espeak-ng -> 16 kHz mono WAV at dest."""
    if missing := missing_tools():
        raise SpeechClipError(
            f"{' and '.join(missing)} not installed: cannot make speech test clips",
            fix=f"sudo apt-get install -y {' '.join(missing)}",
        )
    raw = dest.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(dest)], check=True)
    raw.unlink()
    return dest


def edge_cases(seconds: float = 3.0) -> dict[str, np.ndarray]:
    """Non-speech clips whose right transcript is empty."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    return {
        "silence": np.zeros_like(t, dtype=np.float32),
        "sine440": (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32),
        "noise": (0.05 * rng.standard_normal(t.shape)).astype(np.float32),
    }


def make_clips(folder: Path, speech: bool = True) -> list[Clip]:
    """Writes the clips into `folder` (reusing ones already there) and lists them, speech first."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    if speech:
        for name, text in SENTENCES.items():
            path = folder / f"{name}.wav"
            if not path.is_file():
                speak(text, path)
            clips.append(Clip(name, path, text))
    for name, samples in edge_cases().items():
        path = folder / f"{name}.wav"
        if not path.is_file():
            write_wav(path, samples)
        clips.append(Clip(name, path, None))
    return clips
