"""The napari face's Qt-free parts: reader, sample data, and the worker generator."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from imaging import data_image
from napari_jpeg_restore import restore
from napari_jpeg_restore._reader import napari_get_reader
from napari_jpeg_restore._sample_data import jpeg_q10_sample
from napari_jpeg_restore.engine import drive
from napari_jpeg_restore.jpeg import facts_from_image, ijg_tables
from napari_jpeg_restore.layer_data import LayerError, restore_layer_data, save_restored_frames
from napari_jpeg_restore.options import RestoreOptions


def run(gen):
    return drive(gen).data


def opts(model, **changes):
    return RestoreOptions(model=str(model), **changes)


@pytest.fixture
def jpg(tmp_path):
    path = tmp_path / "parrots.jpg"
    data_image("LIVE1/parrots.png").crop((0, 0, 300, 200)).save(path, quality=20)
    return path


def test_reader_keeps_tables_ids_and_sampling(jpg):
    reader = napari_get_reader(str(jpg))
    assert napari_get_reader("x.png") is None
    ((data, kwargs, kind),) = reader(str(jpg))
    meta = kwargs["metadata"]
    assert kind == "image" and kwargs["rgb"] and data.shape == (200, 300, 3)
    assert meta["jpeg"]["tables"][0] == ijg_tables(20)[0].ravel().tolist()
    assert meta["jpeg"]["table_ids"] == [0, 1, 1] and meta["jpeg"]["sampling"] == [[2, 2], [1, 1], [1, 1]]
    assert meta["orientation"] == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reader_shows_exif_rotated_files_upright_and_restores_on_the_stored_grid(tmp_path, random_weights, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    data_image("LIVE1/parrots.png").crop((0, 0, 120, 72)).save(path, quality=15, exif=exif)
    ((data, kwargs, _),) = napari_get_reader(str(path))(str(path))
    assert np.array_equal(data, np.asarray(ImageOps.exif_transpose(Image.open(path))))
    out = run(restore_layer_data(data, rgb=True, metadata=kwargs["metadata"], options=opts(random_weights["colour"])))
    restored = restore(Image.open(path), options=opts(random_weights["colour"]))  # stored orientation, EXIF kept
    assert restored.getexif()[0x0112] == orientation
    assert np.array_equal(out, np.asarray(ImageOps.exif_transpose(restored)))


def test_sample_is_a_quality_10_jpeg():
    ((data, kwargs, _),) = jpeg_q10_sample()
    assert data.dtype == np.uint8 and data.ndim == 3
    assert kwargs["metadata"]["jpeg"]["tables"][0] == ijg_tables(10)[0].ravel().tolist()


def test_layer_equals_restore_for_each_table_source(jpg, random_weights):
    model = random_weights["colour"]
    expected = np.asarray(restore(Image.open(jpg), options=opts(model)))
    data = np.asarray(Image.open(jpg))
    ((_, kwargs, _),) = napari_get_reader(str(jpg))(str(jpg))
    assert np.array_equal(run(restore_layer_data(data, rgb=True, metadata=kwargs["metadata"], options=opts(model))), expected)
    # a layer from another reader: the file is read again through layer.source.path
    assert np.array_equal(run(restore_layer_data(data, rgb=True, source_path=str(jpg), options=opts(model))), expected)
    # typed quality 20 = Pillow's tables, with coefficients estimated from the pixels as for any given tables
    given = np.asarray(restore(Image.open(jpg), quantization=facts_from_image(Image.open(jpg)), options=opts(model)))
    assert np.array_equal(run(restore_layer_data(data, rgb=True, quality=20, options=opts(model))), given)
    # no tables anywhere: estimated, as restore() does on a non-JPEG image
    with pytest.warns(UserWarning):
        blind = np.asarray(restore(Image.fromarray(data), options=opts(model)))
    assert np.array_equal(run(restore_layer_data(data, rgb=True, options=opts(model))), blind)


def test_stacks_frame_by_frame_and_progress(jpg, random_weights):
    frame = np.asarray(Image.open(jpg))
    stack = np.stack([frame, frame[::-1].copy()])
    facts = facts_from_image(Image.open(jpg))
    gen = restore_layer_data(stack, rgb=True, quality=20, options=opts(random_weights["colour"], tile=128))
    seen = []
    try:
        while True:
            seen.append(next(gen))
    except StopIteration as done:
        out = done.value.data
        assert done.value.tables == "IJG tables of quality 20"
    assert out.shape == stack.shape
    total = seen[-1][1]
    assert [d for d, _ in seen] == list(range(total + 1))
    assert np.array_equal(out[0], np.asarray(restore(Image.open(jpg), quantization=facts, options=opts(random_weights["colour"], tile=128))))


def test_gray_stack_and_bad_layers(random_weights):
    gray = np.asarray(Image.open(_gray_jpeg()))
    stack = np.stack([gray, gray[::-1].copy()])
    out = run(restore_layer_data(stack, rgb=False, quality=30, options=opts(random_weights["gray"])))
    for frame, restored in zip(stack, out):  # each frame restored on its own, as restore() does
        expected = restore(Image.fromarray(frame), quantization=facts_from_image(Image.open(_gray_jpeg())), options=opts(random_weights["gray"]))
        assert np.array_equal(restored, np.asarray(expected))
    assert not np.array_equal(out[0], gray)
    with pytest.raises(LayerError, match="float32 data; only 8-bit"):
        run(restore_layer_data(gray.astype(np.float32), rgb=False))


def test_closing_the_generator_stops_between_tiles(jpg, random_weights):
    import torch

    threads = torch.get_num_threads()
    gen = restore_layer_data(np.asarray(Image.open(jpg)), rgb=True, quality=20,
                             options=opts(random_weights["colour"], tile=96, threads=1))
    (done, total), second = next(gen), next(gen)
    assert done == 0 and second == (1, total) and total > 2
    gen.close()  # what the Stop button does
    with pytest.raises(StopIteration):
        next(gen)  # it stopped; no further tiles run
    assert torch.get_num_threads() == threads  # and cleaned up after itself


def test_the_result_says_which_tables_and_the_quality_found_for_blind_frames(random_weights):
    from napari_jpeg_restore.jpeg import encode_jpeg

    photo = data_image("LIVE1/parrots.png").crop((0, 0, 320, 240))
    q20, q60 = (np.asarray(encode_jpeg(photo, quality=q)) for q in (20, 60))
    options = opts(random_weights["colour"])
    assert drive(restore_layer_data(q20, rgb=True, options=options)).tables == \
        "tables estimated from the pixels (IJG quality 20)"
    assert drive(restore_layer_data(np.stack([q20, q60]), rgb=True, options=options)).tables == \
        "tables estimated from each frame's pixels (IJG quality 20-60)"


def _gray_jpeg():
    import io

    buf = io.BytesIO()
    data_image("LIVE1/caps.png", "L").crop((0, 0, 100, 60)).save(buf, "JPEG", quality=30)
    buf.seek(0)
    return buf


def test_preview_box_follows_the_view_on_the_block_grid_and_caps_its_size():
    from napari_jpeg_restore.layer_data import PREVIEW_PIXELS, preview_box

    assert preview_box((512, 768), ((-10, -10), (100, 99))) == (0, 104, 0, 104)
    y0, y1, x0, x1 = preview_box((4000, 6000), ((0, 0), (3999, 5999)))  # zoomed out on 24 MP
    assert all(v % 8 == 0 for v in (y0, y1, x0, x1)) and (y1 - y0) * (x1 - x0) <= PREVIEW_PIXELS
    assert abs((y0 + y1) / 2 - 2000) <= 8 and abs((x0 + x1) / 2 - 3000) <= 8  # around the centre
    assert abs((x1 - x0) / (y1 - y0) - 1.5) < 0.02  # the view's shape


@pytest.mark.parametrize("orientation", [1, 6])
def test_region_runs_only_its_tiles_and_equals_the_whole_run_there(tmp_path, random_weights, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a.jpg"
    data_image("LIVE1/bikes.png").save(path, quality=20, exif=exif)
    ((data, kwargs, _),) = napari_get_reader(str(path))(str(path))
    options = opts(random_weights["colour"], tile=128)
    whole_gen = restore_layer_data(data, rgb=True, metadata=kwargs["metadata"], options=options)
    whole = run(whole_gen)
    region = (200, 264, 96, 200)
    gen = restore_layer_data(data, rgb=True, metadata=kwargs["metadata"], options=options, region=region)
    total = next(gen)[1]
    part = run(gen)
    assert total <= 6  # the tiles that cover the region, not the whole image's
    y0, y1, x0, x1 = region
    assert np.array_equal(part[y0:y1, x0:x1], whole[y0:y1, x0:x1])
    assert np.array_equal(part[:50], data[:50]) and not np.array_equal(whole[:50], data[:50])


def test_saving_an_image_layer_names_the_output_after_its_file(jpg, tmp_path, random_weights):
    ((data, kwargs, _),) = napari_get_reader(str(jpg))(str(jpg))
    where = dict(rgb=True, metadata=kwargs["metadata"], options=opts(random_weights["colour"]))
    (written,) = drive(save_restored_frames(data, tmp_path / "out", **where))
    assert written == tmp_path / "out" / "parrots.png"
    assert np.array_equal(np.asarray(Image.open(written)), run(restore_layer_data(data, **where)))
    with pytest.raises(LayerError, match="parrots.png: an output exists"):  # refused before any work
        drive(save_restored_frames(data, tmp_path / "out", **where))
