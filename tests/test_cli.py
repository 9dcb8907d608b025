"""The batch CLI and every kind of bad input: a valid output or a one-line error naming the file,
never a crash, never a changed input."""

import hashlib
import io
import shutil
import subprocess

import numpy as np
import pytest
import simplejpeg
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaging import data_image
from napari_jpeg_restore.cli import FileFailed, main, restore_file
from napari_jpeg_restore.options import RestoreOptions

PHOTO = data_image("LIVE1/parrots.png").crop((0, 0, 96, 64))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(args, models):
    return CliRunner().invoke(main, [*args, "--model", str(models["colour"]), "--gray-model", str(models["gray"])],
                              catch_exceptions=False)


def jpeg_bytes(img=PHOTO, **save):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **save)
    return buf.getvalue()


def test_folders_recursive_outputs_and_untouched_inputs(tmp_path, random_weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    PHOTO.save(src / "a.jpg", quality=20)
    PHOTO.convert("L").save(src / "b.jpeg", quality=30)
    PHOTO.save(src / "sub" / "c.jpg", quality=40)
    (src / "notes.txt").write_text("not an image")
    before = {p: digest(p) for p in src.rglob("*") if p.is_file()}
    result = run([str(src), "-o", str(tmp_path / "out"), "--recursive"], random_weights)
    assert result.exit_code == 0, result.output
    assert "3 restored, 0 skipped, 0 failed" in result.output
    assert "tables: 3 the file's tables" in result.output  # where each file's tables came from
    # not on a terminal (a log): one line per file as it ends
    assert f"[1/3] {src / 'a.jpg'}: restored with the file's tables -> {tmp_path / 'out' / 'a.png'}" in result.output
    for rel, mode in [("a.png", "RGB"), ("b.png", "L"), ("sub/c.png", "RGB")]:
        with Image.open(tmp_path / "out" / rel) as im:
            assert im.size == PHOTO.size and im.mode == mode
    assert before == {p: digest(p) for p in src.rglob("*") if p.is_file()}
    assert not list((tmp_path / "out").rglob("*.partial"))


@pytest.mark.parametrize("fmt, suffix", [("png", ".png"), ("tiff", ".tiff"), ("webp", ".webp")])
def test_every_format_keeps_what_restore_keeps_and_turns_upright(tmp_path, random_weights, fmt, suffix):
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x010E] = "kept"
    icc = Image.new("RGB", (1, 1)).info.get("icc_profile") or b"\0" * 132
    PHOTO.save(tmp_path / "r.jpg", quality=25, exif=exif, icc_profile=icc, dpi=(300, 150))
    result = run([str(tmp_path / "r.jpg"), "-o", str(tmp_path / "out"), "--format", fmt], random_weights)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / f"r{suffix}") as im:
        assert im.size == (PHOTO.height, PHOTO.width)  # orientation 8 shown upright
        out_exif = im.getexif()
        assert out_exif.get(0x010E) == "kept" and 0x0112 not in out_exif
        assert im.info.get("icc_profile") == icc
        # the dpi turns with the picture; WebP has no field for it, so it rides in the EXIF
        dpi = im.info.get("dpi") or (out_exif.get(0x011A), out_exif.get(0x011B))
        assert tuple(round(float(d)) for d in dpi) == (150, 300)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_outputs_are_the_restored_pixels_turned_upright(tmp_path, random_weights, orientation):
    from PIL import ImageOps

    from napari_jpeg_restore import restore

    exif = Image.Exif()
    exif[0x0112] = orientation
    PHOTO.save(tmp_path / "r.jpg", quality=25, exif=exif)
    result = run([str(tmp_path / "r.jpg"), "-o", str(tmp_path / "out")], random_weights)
    assert result.exit_code == 0, result.output
    restored = restore(Image.open(tmp_path / "r.jpg"), model=random_weights["colour"])  # on the stored grid
    with Image.open(tmp_path / "out" / "r.png") as im:
        assert np.array_equal(np.asarray(im), np.asarray(ImageOps.exif_transpose(restored)))


def test_existing_outputs_overwrite_and_skip(tmp_path, random_weights):
    PHOTO.save(tmp_path / "a.jpg", quality=20)
    out = tmp_path / "out"
    assert run([str(tmp_path / "a.jpg"), "-o", str(out)], random_weights).exit_code == 0
    first = digest(out / "a.png")
    refused = run([str(tmp_path / "a.jpg"), "-o", str(out)], random_weights)
    assert refused.exit_code == 1 and "a.png exists (use --overwrite or --skip-existing)" in refused.output
    skipped = run([str(tmp_path / "a.jpg"), "-o", str(out), "--skip-existing"], random_weights)
    assert skipped.exit_code == 0 and "0 restored, 1 skipped" in skipped.output
    (out / "a.png").write_bytes(b"stale")
    held = tmp_path / "held-by-a-reader"
    held.hardlink_to(out / "a.png")
    assert run([str(tmp_path / "a.jpg"), "-o", str(out), "--overwrite"], random_weights).exit_code == 0
    assert digest(out / "a.png") == first
    # written beside and renamed over: the old file was replaced whole, never rewritten in place
    assert held.read_bytes() == b"stale" and not list(out.glob("*.partial"))


def test_shards_together_make_exactly_one_run(tmp_path, random_weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(7):
        PHOTO.rotate(90 * i, expand=True).save(src / ("sub" if i % 2 else ".") / f"p{i}.jpg", quality=20 + 5 * i)
    one = tmp_path / "one"
    assert run([str(src), "-o", str(one), "-r"], random_weights).exit_code == 0
    shards = tmp_path / "shards"
    counts = []
    for k in (1, 2, 3):
        result = run([str(src), "-o", str(shards), "-r", "--shard", f"{k}/3"], random_weights)
        assert result.exit_code == 0, result.output
        summary = next(line for line in result.output.splitlines() if line.split(" ")[0].isdigit())
        counts.append(int(summary.split(" restored")[0]))
    assert sorted(counts) == [2, 2, 3]  # disjoint: 7 files, each restored once
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert files == sorted(p.relative_to(shards) for p in shards.rglob("*.png")) and len(files) == 7
    assert all(digest(one / f) == digest(shards / f) for f in files)
    # a failed shard is simply run again
    (shards / files[0]).unlink()
    again = [run([str(src), "-o", str(shards), "-r", "--shard", f"{k}/3", "--skip-existing"], random_weights)
             for k in (1, 2, 3)]
    assert sum("1 restored" in r.output for r in again) == 1 and digest(shards / files[0]) == digest(one / files[0])
    bad = run([str(src), "-o", str(shards), "--shard", "4/3"], random_weights)
    assert bad.exit_code == 2 and "K must be in 1..N" in bad.output


def test_a_never_jpeg_image_is_counted_unchanged(tmp_path, random_weights):
    PHOTO.save(tmp_path / "a.jpg", quality=30)
    PHOTO.save(tmp_path / "b.png")  # never JPEG-coded: comes back as it is
    result = run([str(tmp_path), "-o", str(tmp_path / "out")], random_weights)
    assert result.exit_code == 0 and "1 restored, 1 unchanged (never JPEG), 0 skipped, 0 failed (of 2)" in result.output
    with Image.open(tmp_path / "out" / "b.png") as im:
        assert np.array_equal(np.asarray(im), np.asarray(PHOTO))


def test_never_overwrites_an_input(tmp_path, random_weights):
    PHOTO.save(tmp_path / "x.png")
    before = digest(tmp_path / "x.png")
    result = run([str(tmp_path / "x.png"), "-o", str(tmp_path), "--overwrite"], random_weights)
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert digest(tmp_path / "x.png") == before


def _bad_inputs(tmp_path):
    """name -> (bytes, expected error fragment or None for a valid output)."""
    good = jpeg_bytes(quality=30)
    sos = good.index(b"\xff\xda")
    corrupt = bytearray(good)
    for i in range(sos + 40, len(good) - 10, 97):
        corrupt[i] ^= 0x5A
    cmyk = jpeg_bytes(PHOTO.convert("CMYK"), quality=50)
    adobe = cmyk.index(b"Adobe")
    ycck = bytearray(cmyk)
    ycck[adobe + 11] = 2  # Adobe APP14 transform flag: YCCK
    bomb = bytearray(jpeg_bytes(Image.new("RGB", (16, 16)), quality=50))
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (40000).to_bytes(2, "big") * 2
    png = io.BytesIO()
    PHOTO.convert("P").save(png, "PNG")
    png16 = io.BytesIO()
    Image.fromarray(np.arange(48 * 32, dtype=np.uint16).reshape(32, 48) * 30).save(png16, "PNG")
    rgba = io.BytesIO()
    PHOTO.convert("RGBA").save(rgba, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    cases = {
        "empty.jpg": (b"", "not an image"),
        "text.jpg": (b"hello, world\n" * 20, "not an image"),
        "truncated.jpg": (good[: len(good) // 2], "unreadable image"),
        "corrupt.jpg": (bytes(corrupt), None),
        "cmyk.jpg": (cmyk, "CMYK JPEG files are not supported"),
        "ycck.jpg": (bytes(ycck), "YCCK JPEG files are not supported"),
        "progressive.jpg": (jpeg_bytes(quality=20, progressive=True), None),
        "sixteen-bit-tables.jpg": (jpeg_bytes(qtables=[[300] * 64, [500] * 64]), None),
        "one-pixel.jpg": (jpeg_bytes(Image.new("RGB", (1, 1), (9, 99, 199)), quality=10), None),
        "odd.jpg": (jpeg_bytes(PHOTO.crop((0, 0, 7, 13)), quality=10), None),
        "bomb.jpg": (bytes(bomb), "too many pixels"),
        "palette.png": (png.getvalue(), None),
        "sixteen-bit.png": (png16.getvalue(), "I;16 image (16-bit): never JPEG-coded"),
        "rgba.png": (rgba.getvalue(), None),
        "rotated.jpg": (jpeg_bytes(quality=20, exif=exif), None),
    }
    if shutil.which("cjpeg"):
        ppm = io.BytesIO()
        PHOTO.save(ppm, "PPM")
        arith = subprocess.run(["cjpeg", "-arithmetic", "-quality", "30"], input=ppm.getvalue(), capture_output=True,
                               check=True).stdout
        cases["arithmetic.jpg"] = (arith, None)
    return cases


def test_every_bad_input(tmp_path, random_weights):
    src = tmp_path / "in"
    src.mkdir()
    cases = _bad_inputs(tmp_path)
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    before = {p.name: digest(p) for p in src.iterdir()}
    result = run([str(src), "-o", str(tmp_path / "out")], random_weights)
    assert result.exit_code == 1  # some failed, the rest went on
    failed = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    for name, (_, error) in cases.items():
        out = tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png")
        lines = [line for line in failed if f"{src / name}:" in line]
        if error is None:
            assert not lines, lines
            with Image.open(out) as im:
                im.load()
        else:
            assert len(lines) == 1 and error in lines[0], (name, lines)
            assert not out.exists()
    assert before == {p.name: digest(p) for p in src.iterdir()}
    assert "arithmetic.jpg" not in cases or (tmp_path / "out" / "arithmetic.png").exists()


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_jpegs_give_clean_errors_or_valid_outputs(tmp_path_factory, random_weights, data):
    base = SMALL_JPEGS[data.draw(st.integers(0, len(SMALL_JPEGS) - 1))]
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    folder = tmp_path_factory.mktemp("fuzz")
    src, dst = folder / "f.jpg", folder / "f.png"
    src.write_bytes(bytes(mutated))
    try:
        restore_file(src, dst, "png", RestoreOptions(model=str(random_weights["colour"])),
                     RestoreOptions(model=str(random_weights["gray"])))
    except FileFailed as exc:
        message = str(exc)
        assert message.startswith(f"{src}:") and "\n" not in message
        assert not dst.exists()
    else:
        with Image.open(dst) as im:
            im.load()
    assert src.read_bytes() == bytes(mutated)


SMALL_JPEGS = [
    jpeg_bytes(PHOTO.crop((0, 0, 40, 24)), quality=30),
    jpeg_bytes(PHOTO.crop((0, 0, 24, 16)).convert("L"), quality=60),
    simplejpeg.encode_jpeg(np.ascontiguousarray(np.asarray(PHOTO)[:24, :40]), quality=20, colorsubsampling="411"),
    jpeg_bytes(PHOTO.crop((0, 0, 32, 32)), quality=10, progressive=True),
]


def test_strength_option_reaches_the_network(tmp_path, random_weights):
    PHOTO.save(tmp_path / "a.jpg", quality=20)
    for s in ("1.0", "2.0"):
        assert run([str(tmp_path / "a.jpg"), "-o", str(tmp_path / s), "--strength", s], random_weights).exit_code == 0
    one, two = (np.asarray(Image.open(tmp_path / s / "a.png")) for s in ("1.0", "2.0"))
    assert not np.array_equal(one, two)


def test_save_restored_writes_what_jpeg_restore_writes(tmp_path, random_weights):
    """The API's save: upright (orientation 6 turned), lossless by suffix, EXIF and dpi kept, and the
    same bytes jpeg-restore writes for the same file."""
    from napari_jpeg_restore import restore, save_restored

    img = data_image("LIVE1/parrots.png").crop((0, 0, 96, 64))
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "a camera"
    img.save(tmp_path / "phone.jpg", quality=30, exif=exif, dpi=(300, 150))
    out = save_restored(restore(Image.open(tmp_path / "phone.jpg"), model=str(random_weights["colour"])),
                        tmp_path / "api.png")
    with Image.open(out) as im:
        assert im.size == (64, 96) and im.getexif().get(0x0112, 1) == 1 and im.getexif()[0x010F] == "a camera"
        assert tuple(round(d) for d in im.info["dpi"]) == (150, 300)
    run([str(tmp_path / "phone.jpg"), "-o", str(tmp_path / "cli")], random_weights)
    assert digest(out) == digest(tmp_path / "cli" / "phone.png")
    with pytest.raises(ValueError, match="api.jpg: restored images are written losslessly as .png"):
        save_restored(Image.open(out), tmp_path / "api.jpg")


def test_two_inputs_for_one_output_is_a_usage_error_before_any_work(tmp_path, random_weights):
    PHOTO.save(tmp_path / "x.jpg", quality=30)
    PHOTO.save(tmp_path / "x.jpeg", quality=50)
    result = run([str(tmp_path), "-o", str(tmp_path / "out")], random_weights)
    assert result.exit_code == 2 and f"{tmp_path / 'x.jpeg'} and {tmp_path / 'x.jpg'} would both be written to" in result.output
    assert not (tmp_path / "out").exists()


def test_a_folder_without_images_is_a_usage_error_before_any_work(tmp_path, random_weights):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    (tmp_path / "notes" / "deeper").mkdir()
    PHOTO.save(tmp_path / "notes" / "deeper" / "a.jpg", quality=30)
    result = run([str(tmp_path / "notes"), "-o", str(tmp_path / "out")], random_weights)
    assert result.exit_code == 2 and f"{tmp_path / 'notes'}: no images to restore in it (-r also looks" in result.output
    assert not (tmp_path / "out").exists()
    found = run([str(tmp_path / "notes"), "-o", str(tmp_path / "out"), "-r"], random_weights)  # the sub-folder's
    assert found.exit_code == 0 and (tmp_path / "out" / "deeper" / "a.png").exists()


def test_a_bug_inside_is_a_traceback_not_a_failed_file(tmp_path, random_weights, monkeypatch):
    """Only problems with an input (RestoreError) become "failed: FILE: …" lines; a ValueError
    from a bug deep inside must surface, not be counted as one bad file among many."""
    from napari_jpeg_restore.network_io import NetworkIO

    src = tmp_path / "a.jpg"
    src.write_bytes(jpeg_bytes(quality=30))

    def broken(self, *args, **kwargs):
        raise ValueError("a bug, not a bad file")

    monkeypatch.setattr(NetworkIO, "restoration_input", broken)
    with pytest.raises(ValueError, match="a bug, not a bad file"):
        run([str(src), "-o", str(tmp_path / "out")], random_weights)
    assert not (tmp_path / "out" / "a.png").exists()
