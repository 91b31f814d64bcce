"""Generative models over raw items read through a fixed tower (sounds through MFCCs)."""

import numpy as np
import pytest

import jointspace as js
from jointspace.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """An autoencoder over 24 tones (WAV files, read by the mfcc tower) paired with their pitch."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("tones")
    t = np.arange(4000) / 16000
    paths, pitch = [], []
    for i in range(24):
        f = 200.0 + 40.0 * i
        path = folder / f"tone{i}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * f * t), 16000)
        paths.append(str(path))
        pitch.append([f / 1000])
    pairs = js.Pairs({"audio": paths, "pitch": np.asarray(pitch)})
    model = js.create_model("ae", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    return model, paths


def test_one_sound_path_not_in_a_list_is_refused_by_name(sounds):
    """It was read letter by letter: 'items[0]: expected an audio file, got the folder '/''."""
    model, paths = sounds
    with pytest.raises(InputError, match=r"^given\['audio'\]: expected a list of audio items, got a single str; "
                                         r"wrap it in a list"):
        model.posterior_mean({"audio": paths[3]})
    with pytest.raises(InputError, match=r"^given\['audio'\]\[1\]: file '.*missing\.wav' does not exist"):
        model.generate("pitch", {"audio": [paths[0], paths[0] + "missing.wav"]})
    # the same sound alone or among others has the same latent
    np.testing.assert_allclose(model.posterior_mean({"audio": [paths[3]]})[0],
                               model.posterior_mean({"audio": paths[2:5]})[1], rtol=1e-5)


def test_image_files_without_a_tower_are_refused_naming_the_pairs_and_a_tower():
    """The message named the modality as if it were an argument ('image: expected image arrays ...')
    and gave no tower to use."""
    pairs = js.Pairs({"image": [f"/pictures/{i}.png" for i in range(6)], "text": ["a cat", "a dog"] * 3})
    with pytest.raises(InputError, match=r"^pairs\['image'\]: expected image arrays \(n, H, W\), feature vectors "
                                         r"\(n, d\) or texts; got a list of str items such as '/pictures/0.png', "
                                         r"and no tower reads them; give one, e.g. "
                                         r"towers=\{'image': 'efficientnet-lite0'\} for image files$"):
        js.create_model("aae", epochs=1).fit(pairs)


def test_a_tower_for_a_modality_the_model_lacks_is_refused():
    """A misspelt name ({'audoi': 'logmel'}) was ignored, leaving audio to the default mfcc tower."""
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(30, 4)), "b": rng.normal(size=(30, 3))})
    for name in ("ae", "mvae-mopoe"):
        with pytest.raises(InputError, match=r"^towers: no modality 'audoi'; the model has a, b$"):
            js.create_model(name, epochs=1, towers={"audoi": "logmel"}).fit(pairs)
    model = js.create_model("ae", latent_dim=2, hidden=(4,), epochs=1, towers={}).fit(pairs)
    assert [c.tower for c in model.codecs_.values()] == [None, None]


@pytest.mark.parametrize("tower, shown", [("nope", "'nope'"), (3, "3")])
def test_an_unknown_tower_is_refused_naming_its_modality(tower, shown):
    """It was refused as 'tower: unknown tower ...' where a modality held raw items, and not at
    all where it held feature vectors."""
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(30, 4)), "b": rng.normal(size=(30, 3))})
    with pytest.raises(InputError, match=rf"^towers\['a'\]: unknown tower {shown}; known: .*\bmfcc\b"):
        js.create_model("aae", epochs=1, towers={"a": tower}).fit(pairs)
