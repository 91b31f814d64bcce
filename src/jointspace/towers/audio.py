"""Audio feature towers: log-mel spectrogram and MFCC (librosa), no learned weights.

Fixed-length form (``embed``): statistics over time, the mean and the standard deviation of
each coefficient (for MFCC also of its first time-derivative, the "delta"), so a sound of any
length gives one vector.  Sequence form (``sequence``): the frames themselves, (n, T, d),
zero-padded to a common length, with the true lengths.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .._validation import check_bool, check_int
from ..errors import InputError, MissingDependencyError
from .base import Tower, register_tower
from .inputs import _describe, check_items, load_audio


def _librosa():
    try:
        import librosa
    except ImportError:
        raise MissingDependencyError("the audio towers need librosa: pip install librosa soundfile") from None
    return librosa


def _empty_mel_bands(sample_rate: int, n_fft: int, n_mels: int) -> int:
    """How many of librosa's ``n_mels`` mel filters over an ``n_fft``-point FFT hold no FFT bin."""
    import librosa

    return int((librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).max(axis=1) == 0).sum())


@functools.lru_cache(maxsize=64)
def _check_mel_bands(sample_rate: int, n_fft: int, n_mels: int) -> None:
    """Refuse settings whose mel filters are too narrow for the FFT's bins: an empty band is
    always zero, a feature that carries nothing.  The message gives the most bands that fit."""
    try:
        import librosa  # noqa: F401
    except ImportError:   # the towers say what to install when they first run
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # librosa's 'Empty filters detected' is what is reported here
        if not _empty_mel_bands(sample_rate, n_fft, n_mels):
            return
        low, high = 0, n_mels   # the most bands without an empty one lies in [low, high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if not _empty_mel_bands(sample_rate, n_fft, mid) else (low, mid)
    raise InputError(f"n_mels: {n_mels} mel bands over an FFT of n_fft={n_fft} points at {sample_rate} Hz leave "
                     f"some bands without any FFT bin (always zero); use n_mels <= {low}, or a larger n_fft")


class _FrameTower(Tower):
    """Shared code: frames per sound -> pooled vector or padded sequence."""

    modality = "audio"
    default_batch_size = 64

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 64):
        self.sample_rate = check_int(sample_rate, "sample_rate", low=1000)
        self.n_fft = check_int(n_fft, "n_fft", low=16)
        self.hop_length = check_int(hop_length, "hop_length", low=1)
        self.n_mels = check_int(n_mels, "n_mels", low=1)
        _check_mel_bands(self.sample_rate, self.n_fft, self.n_mels)

    def config(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "n_mels": self.n_mels}

    @property
    def frame_dim(self) -> int:
        """Length of one frame vector in :meth:`sequence`."""
        raise NotImplementedError

    def frames(self, y: np.ndarray) -> np.ndarray:
        """Frames of one waveform, shape (d, T) (librosa's layout)."""
        raise NotImplementedError

    def _pool(self, f: np.ndarray) -> np.ndarray:
        return np.concatenate([f.mean(axis=1), f.std(axis=1)])

    def _frames_of(self, item, where: str) -> np.ndarray:
        y = load_audio(item, self.sample_rate, where)
        with warnings.catch_warnings():
            # librosa warns when a sound is shorter than one FFT window; it zero-pads, which is fine
            warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
            # samples far outside [-1, 1] overflow the float32 power spectrum: refused below
            warnings.filterwarnings("ignore", message="overflow|invalid value", category=RuntimeWarning)
            f = self.frames(y)
        if not np.isfinite(f).all():
            raise InputError(f"{_describe(item, where)}: the waveform's samples reach {float(np.abs(y).max()):.3g}, "
                             "too large for a float32 spectrogram; expected samples in [-1, 1]")
        return f

    def _embed_batch(self, items) -> np.ndarray:
        return np.stack([self._pool(self._frames_of(it, f"items[{i}]")) for i, it in enumerate(items)])

    def sequence(self, items, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frame sequences, zero-padded (or cut) to a common length.

        Parameters
        ----------
        items : list of n WAV paths or 1-D float arrays
        max_frames : int, optional
            Fixed length T; default the longest sound's frame count.

        Returns
        -------
        seq : ndarray of float32, shape (n, T, frame_dim)
        lengths : ndarray of int64, shape (n,)
            Number of real (not padded) frames of each sound, at most T.
        """
        items = check_items("audio", items)
        frames = [self._frames_of(it, f"items[{i}]").T for i, it in enumerate(items)]
        lengths = np.array([f.shape[0] for f in frames], dtype=np.int64)
        t = int(lengths.max()) if max_frames is None else check_int(max_frames, "max_frames", low=1)
        seq = np.zeros((len(frames), t, self.frame_dim), dtype=np.float32)
        for i, f in enumerate(frames):
            seq[i, :min(t, f.shape[0])] = f[:t]
        return seq, np.minimum(lengths, t)


@register_tower("logmel", "log-mel spectrogram statistics (mean and std over time)")
class LogMelTower(_FrameTower):
    """Log-mel spectrogram tower: ``power_to_db(melspectrogram(y))``, pooled to 2 * n_mels.

    Parameters
    ----------
    sample_rate : int
        Sounds are resampled to this rate.
    n_fft, hop_length : int
        STFT window and hop, in samples.
    n_mels : int
        Mel bands.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 64):
        super().__init__(sample_rate, n_fft, hop_length, n_mels)
        self.out_dim = 2 * self.n_mels

    @property
    def frame_dim(self) -> int:
        return self.n_mels

    def frames(self, y):
        lib = _librosa()
        mel = lib.feature.melspectrogram(y=y, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                                         n_mels=self.n_mels)
        return lib.power_to_db(mel, ref=1.0, top_db=None).astype(np.float32)


@register_tower("mfcc", "MFCC statistics: mean and std of the MFCCs and of their deltas")
class MFCCTower(_FrameTower):
    """MFCC tower: mean and std over time of the MFCCs and their deltas (4 * n_mfcc values).

    Parameters
    ----------
    n_mfcc : int
        Cepstral coefficients per frame.
    deltas : bool
        Include the first time-derivative (``librosa.feature.delta``); the sequence form
        then has ``2 * n_mfcc`` values per frame.
    sample_rate, n_fft, hop_length, n_mels : int
        As for :class:`LogMelTower`.
    """

    def __init__(self, n_mfcc: int = 20, deltas: bool = True, sample_rate: int = 16000, n_fft: int = 512,
                 hop_length: int = 160, n_mels: int = 64):
        super().__init__(sample_rate, n_fft, hop_length, n_mels)
        self.n_mfcc = check_int(n_mfcc, "n_mfcc", low=1, high=self.n_mels)
        self.deltas = check_bool(deltas, "deltas")
        self.out_dim = 2 * self.frame_dim

    def config(self) -> dict:
        return {**super().config(), "n_mfcc": self.n_mfcc, "deltas": self.deltas}

    @property
    def frame_dim(self) -> int:
        return self.n_mfcc * (2 if self.deltas else 1)

    def frames(self, y):
        lib = _librosa()
        m = lib.feature.mfcc(y=y, sr=self.sample_rate, n_mfcc=self.n_mfcc, n_fft=self.n_fft,
                             hop_length=self.hop_length, n_mels=self.n_mels)
        if self.deltas:
            # "nearest" edges work for sounds shorter than the delta window
            m = np.concatenate([m, lib.feature.delta(m, mode="nearest")])
        return m.astype(np.float32)
