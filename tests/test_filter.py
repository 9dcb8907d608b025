import hashlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from imaging import assert_same_pixels, data_image, jpeg, psnr
from napari_jpeg_restore import BlindModeWarning, JpegError, QGCNRestore, RestoreCancelled, restore


@pytest.fixture(scope="module")
def photo():
    return data_image("LIVE1/parrots.png").crop((0, 0, 203, 141))  # odd size


def _file(tmp_path, img, name="a.jpg", **save):
    path = tmp_path / name
    img.save(path, "JPEG", **save)
    return path


def test_restore_keeps_size_mode_metadata_and_input(tmp_path, photo, random_weights):
    exif = Image.Exif()
    exif[0x010E] = "a test image"
    icc = b"\0" * 128  # carried as bytes; the restorer does not interpret it
    path = _file(tmp_path, photo, quality=15, exif=exif, icc_profile=icc, dpi=(300, 300))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    img = Image.open(path)
    before = np.asarray(img).copy()
    out = restore(img, model=random_weights["colour"])
    assert out.size == img.size and out.mode == "RGB" and out is not img
    assert out.info["exif"] == img.info["exif"] and out.info["icc_profile"] == icc
    assert tuple(round(d) for d in out.info["dpi"]) == (300, 300)
    assert np.array_equal(np.asarray(img), before)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert psnr(out, before) < 40  # the weights did something


def test_filter_with_file_tables_equals_restore(tmp_path, photo, random_weights):
    img = Image.open(_file(tmp_path, photo, quality=25))
    expected = np.asarray(restore(img, model=random_weights["colour"]))
    f = QGCNRestore.from_image(img, model=random_weights["colour"])
    assert isinstance(f, ImageFilter.MultibandFilter) and not callable(f)
    assert np.array_equal(np.asarray(img.filter(f)), expected)  # the file's tables and coefficients
    # typed tables carry no coefficients: equal to the file's run where no projection differs
    expected_off = np.asarray(restore(img, model=random_weights["colour"], consistency="off"))
    quant = QGCNRestore(quantization=img.quantization, subsampling="4:2:0", model=random_weights["colour"],
                        consistency="off")
    assert np.array_equal(np.asarray(img.filter(quant)), expected_off)


def test_blind_filter_finds_pillow_tables(tmp_path, random_weights):
    img = Image.open(_file(tmp_path, data_image("LIVE1/bikes.png"), quality=30))
    # a filter sees no file, so no coefficients either: the tables alone are compared
    expected = np.asarray(restore(img, model=random_weights["colour"], consistency="off"))
    with pytest.warns(BlindModeWarning, match="estimating them from the pixels"):
        out = img.filter(QGCNRestore(model=random_weights["colour"], consistency="off"))
    assert np.array_equal(np.asarray(out), expected)


def test_converted_image_falls_back_to_blind_mode_with_a_warning(tmp_path, photo, random_weights):
    img = Image.open(_file(tmp_path, photo, quality=25)).convert("RGB")
    with pytest.warns(BlindModeWarning):
        restore(img, model=random_weights["colour"])


@pytest.mark.parametrize("dy, dx", [(3, 5), (6, 1)])
def test_blind_restore_of_a_crop_follows_the_original_block_grid(random_weights, dy, dx):
    coded = jpeg(data_image("LIVE1/parrots.png").crop((0, 0, 256, 192)), quality=20)
    whole = restore(coded, model=random_weights["colour"], tile=0)
    crop = coded.crop((dx, dy, coded.width, coded.height))  # a plain image: its blocks start at (-dy, -dx)
    with pytest.warns(BlindModeWarning):
        out = restore(crop, model=random_weights["colour"], tile=0)
    # the grid offset reached the engine and the padding put block edges back on multiples of 8:
    # away from the cut edges (16 px) the crop restores exactly as the same pixels of the whole
    assert_same_pixels(np.asarray(out)[16:, 16:], np.asarray(whole)[dy + 16 :, dx + 16 :])
    assert psnr(out, crop) < 35  # the random weights change the image a lot, so any misfit would show


def test_never_jpeg_comes_back_unchanged(random_weights):
    png = data_image("LIVE1/caps.png")
    with pytest.warns(BlindModeWarning, match="estimating them"), \
            pytest.warns(BlindModeWarning, match="returned unchanged"):
        out = restore(png, model=random_weights["colour"])
    assert np.array_equal(np.asarray(out), np.asarray(png))


def test_gray_rgba_and_la(tmp_path, photo, random_weights):
    gray = Image.open(_file(tmp_path, photo.convert("L"), "g.jpg", quality=20))
    out = restore(gray, model=random_weights["gray"])
    assert out.mode == "L" and out.size == gray.size
    rgba = photo.copy()
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, photo.size[::-1], dtype=np.uint8))
    rgba.putalpha(alpha)
    q = jpeg(photo, quality=20).quantization
    out = restore(rgba, quantization=q, model=random_weights["colour"])
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))
    la = photo.convert("L")
    la.putalpha(alpha)
    out = restore(la, quantization=q, model=random_weights["gray"])
    assert out.mode == "LA" and np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))


def test_one_pixel_and_odd_images(random_weights):
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.jpeg import facts_from_image
    from napari_jpeg_restore.weights import load_model

    engine = Engine.for_model(load_model(random_weights["colour"], colour=True))
    for size in [(1, 1), (13, 7)]:
        img = jpeg(Image.new("RGB", size, (200, 30, 90)), quality=10)
        out = restore(img, model=random_weights["colour"])
        assert out.size == size and out.mode == "RGB"
        # the face hands the file's pixels and tables to the engine and nothing else
        expected = engine.run(np.asarray(img), facts_from_image(img))
        assert np.array_equal(np.asarray(out), expected) and not np.array_equal(expected, np.asarray(img))


def test_unsupported_modes_and_files(tmp_path, photo, random_weights):
    # (palette images are restored as RGB, as jpeg-restore does: test_a_palette_image_is_restored_as_rgb)
    with pytest.raises(ValueError, match="mode I;16 is not supported"):
        restore(Image.new("I;16", (8, 8)), model=random_weights["colour"])
    path = tmp_path / "print.jpg"
    photo.convert("CMYK").save(path)
    with pytest.raises(JpegError, match="print.jpg: CMYK JPEG files are not supported"):
        restore(Image.open(path), model=random_weights["colour"])


def test_cancel_leaves_nothing(tmp_path, random_weights):
    img = Image.open(_file(tmp_path, data_image("LIVE1/bikes.png"), quality=20))
    with pytest.raises(RestoreCancelled):
        restore(img, model=random_weights["colour"], tile=256, cancel=lambda: True)
    with pytest.raises(RestoreCancelled):
        img.filter(QGCNRestore.from_image(img, model=random_weights["colour"], tile=256, cancel=lambda: True))


def test_unknown_filter_option():
    with pytest.raises(TypeError, match="unexpected keyword argument .tiles."):
        QGCNRestore(tiles=3)


def test_restore_takes_a_path_an_array_and_a_quality(tmp_path, random_weights):
    """What a script author passes first: a path (its tables and coefficients kept), an array (with a
    quality or tables, else blind), and clear one-line errors naming what is wrong."""
    model = str(random_weights["colour"])
    path = _file(tmp_path, data_image("LIVE1/bikes.png").crop((0, 0, 96, 64)), quality=30)
    from_path = restore(str(path), model=model)
    assert isinstance(from_path, Image.Image) and from_path.info["jpeg_restore"]["coefficients"] == "read from the file"
    assert np.array_equal(np.asarray(from_path), np.asarray(restore(Image.open(path), model=model)))
    assert np.array_equal(np.asarray(restore(path, model=model)), np.asarray(from_path))  # a Path too
    pixels = np.asarray(Image.open(path))
    typed = restore(pixels, model=model, quality=30)
    assert isinstance(typed, np.ndarray) and typed.shape == pixels.shape and typed.dtype == np.uint8
    given = restore(Image.fromarray(pixels), model=model, quantization=Image.open(path).quantization)
    assert np.array_equal(typed, np.asarray(given))  # quality=30 is Pillow's tables at 30
    with pytest.raises(TypeError, match="for a quality factor pass quality=50"):
        restore(pixels, model=model, quantization=50)
    with pytest.raises(ValueError, match="quality must be a whole number in 1..100, got 0"):
        restore(pixels, model=model, quality=0)
    with pytest.raises(TypeError, match="restore\\(\\) takes a path, a Pillow image or a NumPy array, not int"):
        restore(7, model=model)
    with pytest.raises(ValueError, match="uint8 arrays of shape"):
        restore(pixels.astype(np.float32), model=model, quality=30)
    with pytest.raises(FileNotFoundError, match="nope.jpg: no such file"):
        restore(str(tmp_path / "nope.jpg"), model=model)


def test_a_palette_image_is_restored_as_rgb(random_weights):
    palette = jpeg(data_image("LIVE1/bikes.png").crop((0, 0, 96, 64)), quality=20).convert("P")
    with pytest.warns(BlindModeWarning):
        out = restore(palette, model=str(random_weights["colour"]))
    assert out.mode == "RGB" and out.size == palette.size
