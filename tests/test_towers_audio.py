"""Audio feature towers against librosa called directly."""

import librosa
import numpy as np
import pytest
import soundfile as sf

from jointspace.errors import InputError
from jointspace.towers import create_tower


def _tone(n=4000, f=440.0, sr=16000, seed=0):
    t = np.arange(n) / sr
    noise = np.random.default_rng(seed).normal(0, 0.01, n)
    return (0.3 * np.sin(2 * np.pi * f * t) + noise).astype(np.float32)


def test_mfcc_against_librosa():
    y = _tone()
    tower = create_tower("mfcc", n_mfcc=13)
    v = tower.embed([y])
    assert v.shape == (1, 52) and v.dtype == np.float32 and tower.out_dim == 52
    m = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=64)
    d = librosa.feature.delta(m, mode="nearest")
    ref = np.concatenate([m.mean(1), d.mean(1), m.std(1), d.std(1)])
    assert np.allclose(v[0], ref, rtol=1e-4, atol=1e-3)
    no_delta = create_tower("mfcc", n_mfcc=13, deltas=False).embed([y])
    assert np.allclose(no_delta[0], np.concatenate([m.mean(1), m.std(1)]), rtol=1e-4, atol=1e-3)


def test_logmel_against_librosa_and_wav_file(tmp_path):
    y = _tone(f=1000.0)
    sf.write(tmp_path / "a.wav", y, 16000, subtype="FLOAT")
    tower = create_tower("logmel", n_mels=32)
    v = tower.embed([str(tmp_path / "a.wav"), y])
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, n_mels=32),
                              ref=1.0, top_db=None)
    ref = np.concatenate([mel.mean(1), mel.std(1)])
    assert v.shape == (2, 64)
    assert np.allclose(v[0], ref, rtol=1e-4, atol=1e-3) and np.allclose(v[1], ref, rtol=1e-4, atol=1e-3)
    # a louder sound shifts every dB value by the same amount (20 log10 2), leaving the std
    v2 = tower.embed([2 * y])[0]
    assert np.allclose(v2[:32] - v[1, :32], 20 * np.log10(2.0), atol=1e-2)
    assert np.allclose(v2[32:], v[1, 32:], atol=1e-2)


def test_sequence_form_pads_and_reports_lengths():
    a, b = _tone(3200), _tone(1600, seed=1)
    tower = create_tower("mfcc", n_mfcc=10)
    seq, lengths = tower.sequence([a, b])
    assert seq.shape == (2, 21, 20) and lengths.tolist() == [21, 11]
    assert np.all(seq[1, 11:] == 0)
    m = librosa.feature.mfcc(y=b, sr=16000, n_mfcc=10, n_fft=512, hop_length=160, n_mels=64)
    assert np.allclose(seq[1, :11, :10], m.T, rtol=1e-4, atol=1e-3)
    cut, lengths = tower.sequence([a, b], max_frames=5)
    assert cut.shape == (2, 5, 20) and lengths.tolist() == [5, 5]
    # pooled vector = statistics of the unpadded sequence
    full = seq[0, :21]
    assert np.allclose(tower.embed([a])[0], np.concatenate([full.mean(0), full.std(0)]), rtol=1e-4, atol=1e-3)


def test_short_sound_and_determinism():
    y = _tone(300)  # shorter than the delta window
    tower = create_tower("mfcc")
    v = tower.embed([y, y])
    assert np.isfinite(v).all() and np.array_equal(v[0], v[1])


@pytest.mark.parametrize("sr", [8000, 22050])
def test_resampled_wav(tmp_path, sr):
    y = _tone(sr // 4, sr=sr)
    sf.write(tmp_path / "x.wav", y, sr, subtype="FLOAT")
    v = create_tower("logmel").embed([str(tmp_path / "x.wav")])
    ref = create_tower("logmel").embed([librosa.resample(y, orig_sr=sr, target_sr=16000)])
    assert np.allclose(v, ref, atol=1e-2)


@pytest.mark.parametrize("name", ["logmel", "mfcc"])
def test_samples_too_large_for_the_spectrogram_are_refused_not_embedded_as_nan(name, tmp_path):
    from jointspace.errors import InputError

    loud = np.full(4000, 1e20, np.float32)   # finite, but its power spectrum overflows float32
    with pytest.raises(InputError, match=r"items\[1\]: the waveform's samples reach 1e\+20, too large .*\[-1, 1\]"):
        create_tower(name).embed([_tone(), loud])
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match=r"items\[0\] \('.*loud.wav'\): the waveform's samples reach 1e\+20"):
        create_tower(name).embed([str(tmp_path / "loud.wav")])
    fine = create_tower(name).embed([_tone() * 3.0])   # beyond [-1, 1] but no overflow: embedded as before
    assert np.isfinite(fine).all()


@pytest.mark.parametrize("value", ["no", "false", None, 0])
def test_mfcc_deltas_must_be_a_bool(value):
    from jointspace.errors import InputError

    with pytest.raises(InputError, match=f"deltas: expected True or False, got {value!r}"):
        create_tower("mfcc", deltas=value)


@pytest.mark.parametrize("tower", ["logmel", "mfcc"])
@pytest.mark.parametrize("params, most", [({"n_mels": 200}, 192), ({"n_mels": 1000}, 192), ({"n_fft": 16}, 5)])
def test_mel_bands_without_fft_bins_are_refused_with_the_most_that_fit(tower, params, most):
    import warnings

    import librosa

    with pytest.raises(InputError, match=rf"^n_mels: .* leave some bands without any FFT bin .*use n_mels <= {most},"):
        create_tower(tower, **params)
    n_fft = params.get("n_fft", 512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = [librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=m) for m in (most, most + 1)]
    assert (fb[0].max(axis=1) > 0).all() and (fb[1].max(axis=1) == 0).any()   # the bound is tight
    create_tower(tower, n_fft=n_fft, n_mels=most, **({"n_mfcc": min(20, most)} if tower == "mfcc" else {}))


def test_a_sound_file_whose_header_leaves_its_length_out_is_named_with_that_reason(tmp_path):
    from jointspace.towers.inputs import load_audio

    path = tmp_path / "stream.flac"
    sf.write(path, np.sin(np.linspace(0, 200, 8000)).astype(np.float32), 16000, format="FLAC")
    data = bytearray(path.read_bytes())
    # STREAMINFO (after "fLaC" and its block header): total samples 0 means "unknown", as a stream writes it
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = fields.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^sound \('.*stream\.flac'\): its header does not say how long the sound "
                                         r"is \(as a stream writes it\); save it again with its length, or as WAV$"):
        load_audio(path, 16000, "sound")
