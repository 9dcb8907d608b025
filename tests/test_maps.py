import io

import numpy as np
import simplejpeg
from PIL import Image

from napari_jpeg_restore.jpeg import facts_from_image, facts_from_tables
from napari_jpeg_restore.maps import normalise_tables, quantization_maps

LUMA = np.arange(1, 65).reshape(8, 8)
CHROMA = 100 + np.arange(64).reshape(8, 8)


def test_normalisation_is_log2_over_8():
    np.testing.assert_allclose(normalise_tables([1, 2, 256, 65536]), [0, 0.125, 1, 2])


def test_luma_map_tiles_the_table_every_8_pixels():
    maps = quantization_maps(facts_from_tables(LUMA), 20, 27)
    assert maps.shape == (1, 20, 27) and maps.dtype == np.float32
    for y, x in [(0, 0), (3, 5), (8, 8), (19, 26), (12, 17)]:
        assert maps[0, y, x] == np.float32(normalise_tables(LUMA[y % 8, x % 8]))


def test_420_chroma_block_covers_16x16_pixels():
    maps = quantization_maps(facts_from_tables(LUMA, CHROMA, "4:2:0"), 32, 32)
    expected = np.kron(normalise_tables(CHROMA), np.ones((2, 2)))
    np.testing.assert_allclose(maps[1, :16, :16], expected, rtol=1e-6)
    np.testing.assert_allclose(maps[1, 16:, 16:], expected, rtol=1e-6)
    np.testing.assert_allclose(maps[0, 8:16, :8], normalise_tables(LUMA), rtol=1e-6)


def test_411_and_440_chroma_blocks_from_a_real_file():
    pix = np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    for code, (by, bx) in [("411", (8, 32)), ("440", (16, 8))]:
        facts = facts_from_image(Image.open(io.BytesIO(simplejpeg.encode_jpeg(pix, 30, colorsubsampling=code))))
        maps = quantization_maps(facts, 64, 64)
        chroma = normalise_tables(facts.map_tables[1])
        np.testing.assert_allclose(maps[1, :by, :bx], np.kron(chroma, np.ones((by // 8, bx // 8))), rtol=1e-6)


def test_region_equals_crop_of_whole_map():
    facts = facts_from_tables(LUMA, CHROMA, "4:1:1")
    whole = quantization_maps(facts, 96, 96)
    np.testing.assert_array_equal(quantization_maps(facts, 40, 24, top=48, left=16), whole[:, 48:88, 16:40])
