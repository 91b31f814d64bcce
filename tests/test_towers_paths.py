"""File-path items of the image and audio towers: an empty or blank path, a folder."""

import pytest

from jointspace.errors import InputError
from jointspace.towers.inputs import check_items


@pytest.mark.parametrize("modality", ["image", "audio"])
@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_named_as_such_not_as_the_current_folder(modality, path):
    with pytest.raises(InputError, match=rf"^items\[1\]: expected the path of an {modality} file, "
                                         rf"got {path!r}$"):
        check_items(modality, [__file__, path])


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_folder_is_refused_naming_it(modality, tmp_path):
    with pytest.raises(InputError, match=rf"^items\[0\]: expected an {modality} file, got the folder "):
        check_items(modality, [str(tmp_path)])


@pytest.mark.parametrize("shape", [(40, 60, 3), (40, 60, 4)])
def test_one_colour_picture_is_not_read_as_a_batch_of_strips(shape):
    import numpy as np

    from jointspace.towers import create_tower

    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    tower = create_tower("cnn", image_size=16)
    with pytest.raises(InputError, match=rf"^items: expected a list of images, got one image array of shape "
                                         rf"\({shape[0]}, {shape[1]}, {shape[2]}\); wrap it in a list"):
        tower.embed(img)   # was 40 vectors of 60 x 3 grayscale strips
    # wrapped in a list, or as a batch of one, it is one picture: the vector of that picture
    one = tower.embed([img], progress=False)
    assert one.shape == (1, tower.out_dim)
    assert np.array_equal(tower.embed(img[None], progress=False), one)
    # a batch of grayscale pictures (n, H, W) is still n pictures
    gray = img[..., 0]
    assert tower.embed(np.stack([gray, gray]), progress=False).shape == (2, tower.out_dim)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_one_multichannel_sound_is_not_read_as_a_batch_of_tiny_sounds(channels, tmp_path):
    import numpy as np
    import soundfile as sf

    from jointspace.towers import create_tower

    t = np.arange(8000) / 16000
    stereo = np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(channels)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    y, _ = sf.read(tmp_path / "s.wav", dtype="float32", always_2d=True)   # (8000, channels)
    tower = create_tower("mfcc")
    with pytest.raises(InputError, match=rf"^items: expected a list of 1-D waveforms, got one array of shape "
                                         rf"\(8000, {channels}\), which looks like one sound of {channels} channels"):
        tower.embed(y)   # was 8000 vectors of sounds {channels} samples long
    # mixed to mono as the message says, it is the vector of the file itself
    assert np.allclose(tower.embed([y.mean(axis=1)], progress=False), tower.embed([str(tmp_path / "s.wav")],
                                                                                  progress=False), atol=1e-4)
    # a batch of equal-length mono sounds (n, n_samples) is still n sounds
    assert tower.embed(y.T[:1], progress=False).shape == (1, tower.out_dim)
