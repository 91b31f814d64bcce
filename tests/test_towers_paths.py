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
