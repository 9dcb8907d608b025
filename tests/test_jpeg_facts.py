import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from imaging import jpeg
from napari_jpeg_restore.jpeg import JpegError, facts_from_image, facts_from_tables, ijg_tables

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("quality", [1, 10, 50, 90, 100])
def test_pillow_tables_read_by_component(quality):
    facts = facts_from_image(jpeg(NOISE, quality=quality))
    luma, chroma = ijg_tables(quality)
    assert facts.colour and facts.table_ids == (0, 1, 1)
    np.testing.assert_array_equal(facts.tables[0], luma)
    np.testing.assert_array_equal(facts.tables[1], chroma)
    np.testing.assert_array_equal(facts.tables[2], chroma)


def _luma_on_table_one(data: bytes) -> bytes:
    """The same JPEG with its two tables' ids swapped: the file lists table 0 (now chroma) first
    and the luma component refers to table 1, so neither file order nor component index finds it."""
    out, i, dqts = bytearray(data[:2]), 2, []
    while data[i + 1] != 0xDA:  # up to the scan; the entropy-coded data follows unchanged
        seg = bytearray(data[i : i + 4 + int.from_bytes(data[i + 2 : i + 4], "big") - 2])
        i += len(seg)
        if seg[1] == 0xDB:
            assert len(seg) == 4 + 1 + 64, "libjpeg writes one 8-bit table per DQT segment"
            seg[4] ^= 1
            dqts.append(seg)
            if len(dqts) == 2:
                out += dqts[1] + dqts[0]  # table 0 first in the file, as encoders usually order them
            continue
        if seg[1] in (0xC0, 0xC1, 0xC2):
            for c in range(seg[9]):
                seg[10 + 3 * c + 2] ^= 1
        out += seg
    return bytes(out + data[i:])


def test_tables_found_by_the_components_table_ids_not_by_order():
    original = io.BytesIO()
    Image.fromarray(NOISE).save(original, "JPEG", quality=30)
    swapped = Image.open(io.BytesIO(_luma_on_table_one(original.getvalue())))
    np.testing.assert_array_equal(np.asarray(swapped), np.asarray(Image.open(original)))  # the same image
    assert list(swapped.quantization) == [0, 1]  # the file lists table 0 (chroma) first
    facts = facts_from_image(swapped)
    luma, chroma = ijg_tables(30)
    assert facts.table_ids == (1, 0, 0)
    np.testing.assert_array_equal(facts.tables[0], luma)
    np.testing.assert_array_equal(facts.tables[1], chroma)


@pytest.mark.parametrize(
    "code, sampling, block, mcu",
    [("444", (1, 1), (8, 8), (8, 8)), ("422", (2, 1), (8, 16), (8, 16)), ("420", (2, 2), (16, 16), (16, 16)),
     ("440", (1, 2), (16, 8), (16, 8)), ("411", (4, 1), (8, 32), (8, 32))],
)
def test_sampling_factors_of_all_five_subsamplings(code, sampling, block, mcu):
    im = Image.open(io.BytesIO(simplejpeg.encode_jpeg(NOISE, quality=40, colorsubsampling=code)))
    facts = facts_from_image(im)
    assert facts.sampling == (sampling, (1, 1), (1, 1))
    assert facts.block_sizes == ((8, 8), block)
    assert facts.mcu == mcu
    assert facts.subsampling == f"{code[0]}:{code[1]}:{code[2]}"


def test_grayscale_file():
    facts = facts_from_image(jpeg(NOISE[..., 0], quality=30))
    assert not facts.colour and facts.sampling == ((1, 1),) and facts.mcu == (8, 8)
    np.testing.assert_array_equal(facts.tables[0], ijg_tables(30)[0])
    assert len(facts.map_tables) == 1


def test_sixteen_bit_tables():
    facts = facts_from_image(jpeg(NOISE, qtables=[[300] * 64, [1000] * 64]))
    assert facts.tables[0].max() == 300 and facts.tables[1].max() == 1000


def test_three_tables_through_table_ids_and_the_chroma_rule():
    im = jpeg(NOISE, qtables=[[10] * 64, [20] * 64, [40] * 64])
    facts = facts_from_image(im)
    assert facts.table_ids == (0, 1, 2)
    assert [t[0, 0] for t in facts.tables] == [10, 20, 40]
    # documented rule: the single chroma map is the element-wise mean of Cb's and Cr's tables
    np.testing.assert_array_equal(facts.map_tables[1], np.full((8, 8), 30.0))


def test_cmyk_jpeg_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(NOISE).convert("CMYK").save(path)
    with pytest.raises(JpegError, match="cmyk.jpg.*CMYK"):
        facts_from_image(Image.open(path))


def test_non_jpeg_is_refused(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(NOISE).save(path)
    with pytest.raises(JpegError, match="a.png: not a JPEG"):
        facts_from_image(Image.open(path))


def test_facts_from_tables_checks_values():
    facts = facts_from_tables([5] * 64, [7] * 64, "4:2:2")
    assert facts.sampling[0] == (2, 1) and facts.tables[2][0, 0] == 7
    with pytest.raises(ValueError, match="1..65535"):
        facts_from_tables([0] * 64)
    with pytest.raises(ValueError, match="subsampling"):
        facts_from_tables([5] * 64, [5] * 64, "4:3:1")


def test_facts_survive_plain_data():
    from napari_jpeg_restore.jpeg import facts_from_dict, facts_to_dict

    facts = facts_from_image(jpeg(NOISE, qtables=[[300] * 64, [20] * 64, [40] * 64], subsampling=1))
    again = facts_from_dict(facts_to_dict(facts))
    assert again.sampling == facts.sampling and again.table_ids == facts.table_ids
    assert all(np.array_equal(a, b) for a, b in zip(again.tables, facts.tables))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_rule_matches_pillow(orientation):
    from PIL import ImageOps

    from napari_jpeg_restore.jpeg import exif_orientation, to_stored, to_upright

    exif = Image.Exif()
    exif[0x0112] = orientation
    im = jpeg(NOISE, quality=90, exif=exif)
    assert exif_orientation(im) == orientation
    stored = np.asarray(im)
    upright = to_upright(stored, orientation)
    assert np.array_equal(upright, np.asarray(ImageOps.exif_transpose(im)))
    assert np.array_equal(to_stored(upright, orientation), stored)
