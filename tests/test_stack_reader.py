"""Many JPEGs as one lazy stack layer: each frame keeps its own file's facts and is restored with them."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from imaging import data_image
from napari_jpeg_restore import _reader, restore
from napari_jpeg_restore._reader import napari_get_reader
from napari_jpeg_restore.engine import drive
from napari_jpeg_restore.jpeg import ijg_tables
from napari_jpeg_restore.layer_data import frame_metadata, restore_layer_data
from napari_jpeg_restore.options import RestoreOptions

PHOTO = data_image("LIVE1/parrots.png")


@pytest.fixture
def frames(tmp_path):
    """A folder of three 160×96 frames coded at qualities 15, 40 and 80 (one rotated by EXIF)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 3
    for i, q in enumerate((15, 40, 80)):
        PHOTO.crop((40 * i, 0, 40 * i + 160, 96)).save(folder / f"f{i}.jpg", quality=q, **({"exif": exif} if i == 2 else {}))
    (folder / "notes.txt").write_text("not a frame")
    return folder


def test_a_folder_opens_as_one_lazy_stack_with_each_files_tables(frames, monkeypatch):
    decoded = []
    decode = _reader._decode
    monkeypatch.setattr(_reader, "_decode", lambda *a: (decoded.append(a), decode(*a))[1])
    ((data, kwargs, kind),) = napari_get_reader(str(frames))(str(frames))
    assert kind == "image" and kwargs["rgb"] and data.shape == (3, 96, 160, 3) and kwargs["name"] == "frames"
    assert decoded == []  # nothing decoded to open it
    files = kwargs["metadata"]["frames"]
    assert [m["jpeg"]["tables"][0] for m in files] == [ijg_tables(q)[0].ravel().tolist() for q in (15, 40, 80)]
    assert [m["orientation"] for m in files] == [1, 1, 3]
    frame = np.asarray(data[2])
    assert len(decoded) == 1  # only the frame asked for
    assert np.array_equal(frame, np.asarray(ImageOps.exif_transpose(Image.open(frames / "f2.jpg"))))


def test_each_frame_of_the_stack_is_restored_as_its_file_alone(frames, random_weights):
    ((data, kwargs, _),) = napari_get_reader(str(frames))(str(frames))
    options = RestoreOptions(model=str(random_weights["colour"]))
    result = drive(restore_layer_data(np.asarray(data), rgb=True, metadata=kwargs["metadata"], options=options))
    assert result.tables == "the file's tables (layer metadata)"
    for i in range(3):
        alone = restore(Image.open(frames / f"f{i}.jpg"), options=options)  # its own tables and coefficients
        assert np.array_equal(result.data[i], np.asarray(ImageOps.exif_transpose(alone))), i
        # a preview of that frame alone, with its metadata, is the same
        one = drive(restore_layer_data(np.asarray(data[i]), rgb=True, metadata=frame_metadata(kwargs["metadata"], i),
                                       options=options))
        assert np.array_equal(one.data, result.data[i])


def test_files_of_other_shapes_or_kinds_open_as_a_layer_each(tmp_path):
    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    PHOTO.crop((0, 0, 64, 48)).save(a, quality=30)
    PHOTO.crop((0, 0, 80, 48)).save(b, quality=30)
    PHOTO.crop((0, 0, 64, 48)).convert("L").save(c, quality=30)
    layers = napari_get_reader([str(a), str(b), str(c)])([str(a), str(b), str(c)])
    assert [kw["name"] for _, kw, _ in layers] == ["a", "b", "c"]
    assert [kw["rgb"] for _, kw, _ in layers] == [True, True, False] and all("jpeg" in kw["metadata"] for _, kw, _ in layers)


def test_what_is_not_all_jpeg_is_left_to_other_readers(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    assert napari_get_reader(str(tmp_path)) is None  # a folder without JPEGs
    PHOTO.crop((0, 0, 16, 16)).save(tmp_path / "y.jpg")
    assert napari_get_reader([str(tmp_path / "y.jpg"), str(tmp_path / "x.png")]) is None
    assert napari_get_reader(str(tmp_path)) is not None  # the folder now has one


def test_a_lazy_restoration_restores_only_the_frames_computed(frames, random_weights, monkeypatch):
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.layer_data import restore_lazily

    ((data, kwargs, _),) = napari_get_reader(str(frames))(str(frames))
    runs = []
    iter_tiles = Engine.iter_tiles

    def counted(self, pixels, facts, **kw):
        runs.append(facts.source)
        return (yield from iter_tiles(self, pixels, facts, **kw))

    monkeypatch.setattr(Engine, "iter_tiles", counted)
    options = RestoreOptions(model=str(random_weights["colour"]))
    lazy = restore_lazily(data, rgb=True, metadata=kwargs["metadata"], options=options)
    assert lazy.shape == data.shape and runs == []  # nothing restored to make it
    one = np.asarray(lazy[1])
    assert len(runs) == 1  # that frame only
    np.asarray(lazy[1])
    assert len(runs) == 1  # kept, not restored again
    whole = np.asarray(lazy)
    assert len(runs) == 3 and np.array_equal(whole[1], one)
    assert np.array_equal(one, np.asarray(restore(Image.open(frames / "f1.jpg"), options=options)))


def test_scripts_open_a_folder_restore_it_lazily_and_save_it(frames, tmp_path, random_weights):
    import napari_jpeg_restore as njr

    stack, metadata = njr.open_frames(frames)
    assert stack.shape == (3, 96, 160, 3) and len(metadata["frames"]) == 3
    options = RestoreOptions(model=str(random_weights["colour"]))
    lazy = njr.restore_lazily(stack, rgb=True, metadata=metadata, options=options)
    written = drive(njr.save_restored_frames(stack, tmp_path / "out", rgb=True, metadata=metadata, options=options))
    assert [p.name for p in written] == ["f0.png", "f1.png", "f2.png"]
    for i, path in enumerate(written):  # the saved frame, the lazy frame and the file restored alone agree
        alone = np.asarray(ImageOps.exif_transpose(restore(Image.open(frames / f"f{i}.jpg"), options=options)))
        assert np.array_equal(np.asarray(Image.open(path)), alone) and np.array_equal(np.asarray(lazy[i]), alone)


def test_open_frames_says_why_a_folder_makes_no_stack(tmp_path):
    from napari_jpeg_restore import RestoreError, open_frames

    with pytest.raises(RestoreError, match=f"{tmp_path}: no JPEG files to open as frames"):
        open_frames(tmp_path)
    PHOTO.crop((0, 0, 64, 48)).save(tmp_path / "a.jpg", quality=30)
    PHOTO.crop((0, 0, 64, 48)).convert("L").save(tmp_path / "b.jpg", quality=30)
    with pytest.raises(RestoreError, match="the frames differ in size or kind"):
        open_frames(tmp_path)
