"""The chain of table sources: given, typed quality, opened file, layer metadata, the layer's file, blind."""

import numpy as np
import pytest
from PIL import Image

from imaging import data_image
from napari_jpeg_restore import BlindModeWarning, restore
from napari_jpeg_restore._reader import napari_get_reader
from napari_jpeg_restore.jpeg import facts_from_image, facts_from_tables, ijg_tables
from napari_jpeg_restore.layer_data import restore_layer_data
from napari_jpeg_restore.options import RestoreOptions
from napari_jpeg_restore.table_sources import find_tables


@pytest.fixture
def files(tmp_path):
    """The same pixels coded at QF 20 and QF 70: sources that disagree."""
    img = data_image("LIVE1/parrots.png").crop((0, 0, 160, 128))
    out = {}
    for q in (20, 70):
        img.save(tmp_path / f"q{q}.jpg", quality=q)
        out[q] = tmp_path / f"q{q}.jpg"
    return out


def _luma(found):
    return found.facts.tables[0]


def test_the_first_source_in_the_chain_wins_when_sources_disagree(files):
    im20 = Image.open(files[20])
    ((_, layer70, _),) = napari_get_reader(str(files[70]))(str(files[70]))
    meta70 = layer70["metadata"]
    given = facts_from_tables(*ijg_tables(90), "4:2:0")

    found = find_tables(colour=True, quantization=given, quality=50, image=im20, metadata=meta70, path=files[20])
    assert np.array_equal(_luma(found), ijg_tables(90)[0]) and found.origin == "the tables given"
    found = find_tables(colour=True, quality=50, image=im20, metadata=meta70, path=files[20])
    assert np.array_equal(_luma(found), ijg_tables(50)[0]) and "quality 50" in found.origin and found.path is None
    found = find_tables(colour=True, image=im20, metadata=meta70, path=files[70])
    assert np.array_equal(_luma(found), ijg_tables(20)[0]) and found.path == str(files[20])
    found = find_tables(colour=True, metadata=meta70, path=files[20])
    assert np.array_equal(_luma(found), ijg_tables(70)[0]) and found.path == str(files[70])
    decoded70 = np.asarray(Image.open(files[70]))
    found = find_tables(colour=True, path=files[20], pixels=decoded70)
    assert np.array_equal(_luma(found), ijg_tables(20)[0]) and not found.estimated
    with pytest.warns(BlindModeWarning, match="estimating them from the pixels"):
        found = find_tables(colour=True, pixels=decoded70)
    assert found.estimated and np.array_equal(_luma(found), ijg_tables(70)[0])
    assert found.origin == "tables estimated from the pixels (IJG quality 70)"


def test_a_typed_quality_wins_over_the_layers_own_tables(files, random_weights):
    """End to end: a layer opened from the QF 70 file but restored at a typed quality 20 is restored
    exactly as with QF 20's tables, not with the file's."""
    ((data, layer, _),) = napari_get_reader(str(files[70]))(str(files[70]))
    options = RestoreOptions(model=str(random_weights["colour"]), consistency="off")
    gen = restore_layer_data(data, rgb=True, metadata=layer["metadata"], quality=20, options=options)
    try:
        while True:
            next(gen)
    except StopIteration as done:
        typed = done.value.data
        assert done.value.tables == "IJG tables of quality 20"
    img = Image.open(files[70])
    as_q20 = restore(img, quantization=facts_from_image(Image.open(files[20])), options=options)
    as_file = restore(img, options=options)
    assert np.array_equal(typed, np.asarray(as_q20)) and not np.array_equal(typed, np.asarray(as_file))
