"""Speech synthesis with the ``espeak-ng`` command: one WAV file per (text, voice) setting."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, JointspaceError, MissingDependencyError

APT_PACKAGE = "espeak-ng"


@dataclass(frozen=True)
class Voice:
    """One way of speaking: an accent (espeak-ng voice), a variant, a speed and a pitch.

    Attributes
    ----------
    accent : str
        An espeak-ng voice name, e.g. ``"en-gb-scotland"``.
    variant : str
        A voice variant (``"m1"``, ``"f2"``, ``"klatt"``, ...), or ``""`` for none.
    speed : int
        Words per minute (espeak-ng ``-s``, 80..450).
    pitch : int
        Pitch 0..99 (espeak-ng ``-p``).
    """

    accent: str
    variant: str = ""
    speed: int = 160
    pitch: int = 50

    @property
    def spec(self) -> str:
        """The ``-v`` argument: ``accent`` or ``accent+variant``."""
        return f"{self.accent}+{self.variant}" if self.variant else self.accent


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    """The version line of the installed ``espeak-ng`` (part of every cache key)."""
    exe = espeak_path()
    if exe is None:
        raise MissingDependencyError(f"espeak-ng is not installed: apt-get install -y {APT_PACKAGE}")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"text-to-speech:\s*(\S+)", out)
    return m.group(1) if m else (" ".join(out.split()[:6]) or "unknown")


def _voices(kind: str) -> list[list[str]]:
    exe = espeak_path()
    if exe is None:
        raise MissingDependencyError(f"espeak-ng is not installed: apt-get install -y {APT_PACKAGE}")
    out = subprocess.run([exe, f"--voices={kind}"], capture_output=True, text=True, timeout=30).stdout
    return [line.split() for line in out.splitlines()[1:] if len(line.split()) >= 5]


@functools.lru_cache(maxsize=1)
def known_variants() -> frozenset:
    """Variant names accepted after ``+`` (the file names listed by ``--voices=variant``)."""
    return frozenset(parts[4].split("/", 1)[-1] for parts in _voices("variant"))


@functools.lru_cache(maxsize=1)
def known_voices() -> frozenset:
    """Every voice name and language code ``espeak-ng --voices`` lists."""
    names = set()
    for parts in _voices(""):
        names.update((parts[1], parts[3], parts[4]))
    return frozenset(names)


def check_voice(voice: Voice) -> None:
    """Raise :class:`InputError` for a voice or variant espeak-ng does not have.

    espeak-ng itself silently falls back to a default voice for unknown names.
    """
    if voice.accent not in known_voices():
        raise InputError(f"voice: espeak-ng has no voice {voice.accent!r}; see 'espeak-ng --voices=en'")
    if voice.variant and voice.variant not in known_variants():
        raise InputError(f"voice: espeak-ng has no variant {voice.variant!r}; see 'espeak-ng --voices=variant'")
    if not (80 <= int(voice.speed) <= 450) or not (0 <= int(voice.pitch) <= 99):
        raise InputError(f"voice: expected speed 80..450 and pitch 0..99, got {voice.speed} and {voice.pitch}")


def english_accents() -> list[str]:
    """The built-in English voices listed by ``espeak-ng --voices=en`` (MBROLA voices left out)."""
    exe = espeak_path()
    if exe is None:
        raise MissingDependencyError(f"espeak-ng is not installed: apt-get install -y {APT_PACKAGE}")
    out = subprocess.run([exe, "--voices=en"], capture_output=True, text=True, timeout=30).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not parts[4].startswith("mb/") and parts[1] != "variant" and parts[1] not in names:
            names.append(parts[1])
    return names


_SAFE_TEXT = re.compile(r"^[\w' .,?!-]+$")


def check_text(text, name: str = "text") -> str:
    """``text`` if it is a non-empty word or phrase :func:`synthesise` can speak (letters,
    digits, spaces and ' . , ? ! -), else an :class:`InputError` naming ``name``."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{name}: expected a non-empty word or phrase, got {text!r}")
    if not _SAFE_TEXT.match(text):
        raise InputError(f"{name}: expected letters, digits, spaces and simple punctuation (' . , ? ! -), "
                         f"got {text!r}")
    return text


def synthesise(text: str, voice: Voice, out_path, timeout: float = 30.0) -> Path:
    """Speak ``text`` with ``voice`` into the WAV file ``out_path`` (written atomically).

    Raises
    ------
    InputError
        Empty text, or characters other than letters, digits, spaces and simple punctuation.
    MissingDependencyError
        ``espeak-ng`` is not installed.
    JointspaceError
        espeak-ng fails, times out, or writes no audio.
    """
    check_text(text)
    exe = espeak_path()
    if exe is None:
        raise MissingDependencyError(f"espeak-ng is not installed: apt-get install -y {APT_PACKAGE}")
    check_voice(voice)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".wav", dir=out_path.parent)
    os.close(fd)
    cmd = [exe, "-v", voice.spec, "-s", str(int(voice.speed)), "-p", str(int(voice.pitch)), "-w", tmp, "--", text]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise JointspaceError(f"espeak-ng failed for {text!r} with voice {voice.spec}: "
                                  f"{proc.stderr.strip() or f'exit {proc.returncode}'}")
        if os.path.getsize(tmp) <= 44:
            raise JointspaceError(f"espeak-ng wrote no audio for {text!r} with voice {voice.spec}"
                                  + (f": {proc.stderr.strip()}" if proc.stderr.strip() else ""))
        os.replace(tmp, out_path)
    except subprocess.TimeoutExpired:
        raise JointspaceError(f"espeak-ng took longer than {timeout:g} s for {text!r} with voice {voice.spec}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
