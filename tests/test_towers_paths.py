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
