"""The consistency layer: restored images held to the file's quantization constraint set."""

import io
import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imaging import assert_same_pixels, data_image, jpeg
from napari_jpeg_restore import restore
from napari_jpeg_restore.consistency import (
    ROUNDING_MARGIN,
    _dct_matrix,
    _in_pixel_range,
    coefficients_from_bytes,
    project,
    read_coefficients,
)
from napari_jpeg_restore.engine import Engine
from napari_jpeg_restore.jpeg import facts_from_image, ijg_tables
from napari_jpeg_restore.network_io import image_tensor
from napari_jpeg_restore.options import RestoreOptions

SAMPLINGS_BY_PILLOW = ("4:4:4", "4:2:2", "4:2:0")


def _pillow(img, path, quality, subsampling=None, **save):
    img.save(path, quality=quality, **({"subsampling": subsampling} if subsampling else {}), **save)
    return path


def _simplejpeg(img, path, quality, subsampling):
    import simplejpeg

    path.write_bytes(simplejpeg.encode_jpeg(np.ascontiguousarray(np.asarray(img)), quality=quality,
                                            colorsubsampling=subsampling.replace(":", "")))
    return path


def _cjpeg(img, path, quality, *flags):
    if not shutil.which("cjpeg"):
        pytest.skip("cjpeg (libjpeg-turbo-progs) not installed")
    ppm = io.BytesIO()
    img.save(ppm, "PPM")
    path.write_bytes(subprocess.run(["cjpeg", "-quality", str(quality), *flags], input=ppm.getvalue(),
                                    capture_output=True, check=True).stdout)
    return path


def _reencoded(img, facts, quality) -> bytes:
    """``img`` coded again with the file's own tables and sampling."""
    if facts.subsampling in (*SAMPLINGS_BY_PILLOW, "gray"):
        buf = io.BytesIO()
        kw = {} if facts.subsampling == "gray" else {"subsampling": facts.subsampling}
        img.save(buf, "JPEG", qtables=[t.astype(int).ravel().tolist() for t in facts.tables[:2]], **kw)
        return buf.getvalue()
    # Pillow writes no 4:4:0 or 4:1:1; libjpeg-turbo through simplejpeg, IJG tables as in the file
    import simplejpeg

    return simplejpeg.encode_jpeg(np.ascontiguousarray(np.asarray(img)), quality=quality,
                                  colorsubsampling=facts.subsampling.replace(":", ""))


def _agreement(file_k, other_k) -> tuple[float, float]:
    """(share of coefficients identical, share more than one step off)."""
    n = sum(k.size for k in file_k.blocks)
    same = sum(int((a == b).sum()) for a, b in zip(file_k.blocks, other_k.blocks))
    far = sum(int((np.abs(a.astype(int) - b) > 1).sum()) for a, b in zip(file_k.blocks, other_k.blocks))
    return same / n, far / n


ENCODERS = {
    "pillow-4:2:0": lambda img, p, q: _pillow(img, p, q, "4:2:0"),
    "pillow-4:4:4": lambda img, p, q: _pillow(img, p, q, "4:4:4"),
    "pillow-4:2:2": lambda img, p, q: _pillow(img, p, q, "4:2:2"),
    "pillow-gray": lambda img, p, q: _pillow(img.convert("L"), p, q),
    "libjpeg-turbo-4:1:1": lambda img, p, q: _simplejpeg(img, p, q, "4:1:1"),
    "libjpeg-turbo-4:4:0": lambda img, p, q: _simplejpeg(img, p, q, "4:4:0"),
    "cjpeg-progressive": lambda img, p, q: _cjpeg(img, p, q, "-progressive"),
    "cjpeg-arithmetic-4:4:4": lambda img, p, q: _cjpeg(img, p, q, "-arithmetic", "-sample", "1x1"),
}


@pytest.mark.parametrize("quality", [10, 50, 90])
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("size", [(256, 192), (203, 141)], ids=["blocks", "odd"])
def test_restored_file_gives_back_its_own_coefficients(tmp_path, encoder, quality, size):
    """Re-encoded with the file's own tables and sampling, the restored image gives back at least as
    many of the file's quantized coefficients as Pillow's own decode does: it invents nothing the
    file rules out. Rounding to 8-bit pixels moves a few by one step, rarely more."""
    gt = data_image("LIVE1/bikes.png").crop((0, 0, *size))
    path = ENCODERS[encoder](gt, tmp_path / "in.jpg", quality)
    im = Image.open(path)
    facts = facts_from_image(im)
    file_k = read_coefficients(path, facts)
    restored = restore(im)  # the shipped model, every default
    assert restored.info["jpeg_restore"]["coefficients"] == "read from the file"
    decoded = Image.open(path).convert(im.mode)
    same_decoded, far_decoded = _agreement(file_k, coefficients_from_bytes(_reencoded(decoded, facts, quality), facts))
    same, far = _agreement(file_k, coefficients_from_bytes(_reencoded(restored, facts, quality), facts))
    assert same >= same_decoded, (same, same_decoded)
    # replicated edge rows multiply a pixel's rounding, so partial blocks stray further
    if quality <= 50 and size[0] % 32 == 0:
        assert far < 1e-4, far
    else:
        assert far <= max(far_decoded / 2, 1e-4), (far, far_decoded)
    assert np.asarray(restored).tolist() != np.asarray(decoded).tolist()  # it did restore


def _coded(gt: Image.Image, quality, **save):
    buf = io.BytesIO()
    gt.save(buf, "JPEG", quality=quality, **save)
    data = buf.getvalue()
    im = Image.open(io.BytesIO(data))
    im.load()
    facts = facts_from_image(im)
    return np.asarray(im), facts, coefficients_from_bytes(data, facts)


@pytest.mark.parametrize("subsampling", SAMPLINGS_BY_PILLOW)
def test_projection_puts_every_coefficient_in_its_interval(subsampling):
    """Before rounding, each whole block of every component (chroma on its own grid) lies within
    k·q ± min(α·q, q/2 - margin) of the file's coefficient; partial edge blocks, which the encoder
    padded by replication, come nearer their intervals with every round of alternating projections."""
    gt = data_image("LIVE1/parrots.png").crop((0, 0, 100, 75))
    decoded, facts, coefficients = _coded(gt, 30, subsampling=subsampling)
    h, w = decoded.shape[:2]
    pad = ((0, (-h) % 16), (0, (-w) % 16), (0, 0))
    torch.manual_seed(0)
    noisy = image_tensor(np.pad(decoded, pad, mode="edge")) + torch.randn(3, h + pad[0][1], w + pad[1][1]) * 0.05
    alpha, worst_edge = 0.3, []
    for rounds in (1, 3):
        out = project(noisy, facts, alpha, coefficients=coefficients, valid=(0, h, 0, w), rounds=rounds)
        # what an encoder sees: the true pixels, replicated over the partial blocks, sampled per component
        rows, cols = torch.arange(out.shape[1]).clamp(max=h - 1), torch.arange(out.shape[2]).clamp(max=w - 1)
        levels = out[:, rows][:, :, cols].double() * 255 - 128
        d = _dct_matrix(torch.float64, "cpu")
        vmax, hmax = max(v for _, v in facts.sampling), max(hh for hh, _ in facts.sampling)
        edge = 0.0
        for plane, (hs, vs), table, k in zip(levels, facts.sampling, facts.tables, coefficients.blocks):
            fy, fx = vmax // vs, hmax // hs
            small = plane.reshape(plane.shape[0] // fy, fy, plane.shape[1] // fx, fx).mean(dim=(1, 3))
            blocks = small.reshape(small.shape[0] // 8, 8, small.shape[1] // 8, 8).transpose(1, 2)
            dct = (d @ blocks @ d.T)[: k.shape[0], : k.shape[1]]
            q = torch.as_tensor(table)
            half = torch.clamp(torch.minimum(alpha * q, q / 2 - ROUNDING_MARGIN), min=0)
            excess = (dct - torch.as_tensor(k) * q).abs() - half
            whole_rows, whole_cols = h // (8 * fy), w // (8 * fx)  # blocks lying wholly inside the image
            assert excess[:whole_rows, :whole_cols].max() < 1e-3
            edge = max(edge, float(excess.max()))
        worst_edge.append(edge)
    assert worst_edge[1] < worst_edge[0]


def test_coefficients_estimated_from_pixels_leave_subsampled_chroma_free():
    """Without the file, k is estimated from the decoded pixels: that is exact for luma but not for
    up-sampled chroma, which then stays as the network gave it."""
    gt = data_image("LIVE1/parrots.png").crop((0, 0, 96, 64))
    decoded, facts, _ = _coded(gt, 20, subsampling="4:2:0")
    torch.manual_seed(0)
    noisy = image_tensor(decoded) + torch.randn(3, 64, 96) * 0.05
    out = project(noisy, facts, 0.3, decoded=image_tensor(decoded), rounds=1)
    in_range = _in_pixel_range(noisy)  # the one change to chroma: pixels clipped to the range
    assert torch.allclose(out[1:], in_range[1:], atol=1e-6) and not torch.allclose(out[0], in_range[0], atol=1e-3)
    # the decode is consistent with its own estimate: projecting it changes nothing visible
    same = project(image_tensor(decoded), facts, 0.3, decoded=image_tensor(decoded))
    assert (same - image_tensor(decoded)).abs().max() < 1e-4


def test_the_result_says_where_the_coefficients_came_from(tmp_path, random_weights):
    model = str(random_weights["colour"])
    path = _pillow(data_image("LIVE1/bikes.png").crop((0, 0, 128, 96)), tmp_path / "a.jpg", 30)
    exact = restore(Image.open(path), model=model)
    assert exact.info["jpeg_restore"] == {"tables": "the file's tables", "consistency": 0.5,
                                          "coefficients": "read from the file"}
    with pytest.warns(UserWarning, match="estimating"):
        blind = restore(Image.open(path).convert("RGB"), model=model)
    assert blind.info["jpeg_restore"]["coefficients"] == "estimated from the pixels"
    off = restore(Image.open(path), model=model, consistency="off")
    assert off.info["jpeg_restore"] == {"tables": "the file's tables"}
    assert np.asarray(off).tolist() != np.asarray(exact).tolist()
    # a file opened elsewhere: the filter made from it carries the file's coefficients too
    from napari_jpeg_restore import QGCNRestore

    img = Image.open(path)
    assert np.array_equal(np.asarray(img.filter(QGCNRestore.from_image(img, model=model))), np.asarray(exact))


def test_sixteen_bit_tables_and_gray_files_read_exactly(tmp_path):
    luma, _ = ijg_tables(3, baseline=False)
    assert luma.max() > 255
    gray = data_image("LIVE1/parrots.png", "L").crop((0, 0, 120, 88))
    path = tmp_path / "g16.jpg"
    gray.save(path, qtables=[luma.ravel().tolist()])
    im = Image.open(path)
    k = read_coefficients(path, facts_from_image(im))
    assert k is not None and len(k.blocks) == 1 and k.blocks[0].shape == (11, 15, 8, 8)
    assert restore(im).info["jpeg_restore"]["coefficients"] == "read from the file"


def test_tiled_equals_whole_with_the_projection_on_a_cropped_jpeg(random_weights):
    """A crop off the block grid (blind mode finds the offset): the projection's blocks follow it, and
    tiles whose cores lie on the grid project the same blocks as the whole image does."""
    model = str(random_weights["colour"])
    coded = jpeg(data_image("LIVE1/bikes.png"), quality=20)
    crop = Image.fromarray(np.asarray(coded)[3:400, 5:500])
    with pytest.warns(UserWarning):
        whole = restore(crop, model=model, tile=0)
    with pytest.warns(UserWarning):
        tiled = restore(crop, model=model, tile=160, overlap=32)
    assert_same_pixels(tiled, whole)


def test_coefficients_that_do_not_fit_are_refused(tmp_path, random_weights):
    path = _pillow(data_image("LIVE1/bikes.png").crop((0, 0, 128, 96)), tmp_path / "a.jpg", 30)
    other = _pillow(data_image("LIVE1/bikes.png").crop((0, 0, 64, 64)), tmp_path / "b.jpg", 30)
    wrong = read_coefficients(other, facts_from_image(Image.open(other)))
    with pytest.raises(ValueError, match="coefficients given are not those of a 128×96 image"):
        restore(Image.open(path), model=str(random_weights["colour"]), coefficients=wrong)
    # a file coded with other tables is not read as this one's
    assert read_coefficients(other, facts_from_image(jpeg(Image.open(other), quality=80))) is None


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("off", "off"), ("0.3", 0.3), (0.5, 0.5)])
def test_consistency_option_values(value, expected):
    assert RestoreOptions(consistency=value).consistency == expected


@pytest.mark.parametrize("value", ["none", "0", "1.5", -0.1])
def test_bad_consistency_values_fail_when_made(value):
    with pytest.raises(ValueError, match="consistency"):
        RestoreOptions(consistency=value)


def test_engine_alpha_follows_the_option_and_the_models_record(random_weights):
    from napari_jpeg_restore.consistency import DEFAULT_ALPHA
    from napari_jpeg_restore.weights import load_model, update_record

    model = load_model(random_weights["gray"], colour=False)
    assert model.consistency_alpha is None and Engine.for_model(model).alpha == DEFAULT_ALPHA  # none recorded
    assert Engine.for_model(model, RestoreOptions(consistency=0.2)).alpha == 0.2
    assert Engine.for_model(model, RestoreOptions(consistency="off")).alpha is None
    folder = random_weights["gray"]
    update_record(folder, consistency={"alpha": 0.35})
    try:
        assert Engine.for_model(load_model(folder, colour=False)).alpha == 0.35
        assert Engine(load_model(folder, colour=False).network).alpha == DEFAULT_ALPHA  # a bare network has none
    finally:
        update_record(folder, consistency={})


def test_command_line_takes_the_option(tmp_path, random_weights):
    from napari_jpeg_restore.cli import main

    _pillow(data_image("LIVE1/bikes.png").crop((0, 0, 64, 64)), tmp_path / "a.jpg", 30)
    ok = CliRunner().invoke(main, [str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--consistency", "off",
                                   "--model", str(random_weights["colour"])])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, [str(tmp_path / "a.jpg"), "-o", str(tmp_path / "bad"), "--consistency", "2"])
    assert bad.exit_code == 2 and "consistency α must be in (0, 1]" in bad.output


def test_projection_trains_after_the_engine_ran_it():
    """A training process also restores (validation, export): the projection's gradient must still
    flow after it ran in inference mode."""
    gt = data_image("LIVE1/parrots.png").crop((0, 0, 64, 48))
    decoded, facts, coefficients = _coded(gt, 30, subsampling="4:2:0")
    with torch.inference_mode():
        project(image_tensor(decoded), facts, 0.4, coefficients=coefficients)
    restored = (image_tensor(decoded) + 0.02).requires_grad_()
    project(restored, facts, 0.4, coefficients=coefficients, rounds=1).sum().backward()
    assert restored.grad is not None and restored.grad.abs().sum() > 0


def test_reading_coefficients_leaves_jpeglibs_library_as_it_was():
    import jpeglib

    from napari_jpeg_restore.consistency import JPEGLIB_VERSION, keep_reader_library

    gt = data_image("LIVE1/parrots.png").crop((0, 0, 64, 48))
    jpeglib.version.set("6b")  # someone else's choice in this process
    _, facts, coefficients = _coded(gt, 30)
    assert coefficients is not None and jpeglib.version.get() == "6b"
    keep_reader_library()  # what training does once
    again = _coded(gt, 30)[2]
    assert jpeglib.version.get() == JPEGLIB_VERSION
    assert all(np.array_equal(a, b) for a, b in zip(coefficients.blocks, again.blocks))
