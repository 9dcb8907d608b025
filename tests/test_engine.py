import copy
import threading

import numpy as np
import pytest
import torch

from imaging import assert_same_pixels, jpeg, psnr
from napari_jpeg_restore import RestoreCancelled
from napari_jpeg_restore.device import pick_device
from napari_jpeg_restore.engine import Engine
from napari_jpeg_restore.jpeg import facts_from_image
from napari_jpeg_restore.options import RestoreOptions
from napari_jpeg_restore.weights import load_model


@pytest.fixture(scope="module")
def colour_model(random_weights):
    return load_model(random_weights["colour"], colour=True).network


@pytest.fixture(scope="module")
def q20(textured):
    im = jpeg(textured, quality=20)
    return np.asarray(im), facts_from_image(im)


def test_tiled_equals_untiled_with_the_default_tile(colour_model, q20):
    pixels, facts = q20
    assert max(pixels.shape) > 512  # tile edges fall inside the image
    whole = Engine(colour_model, RestoreOptions(tile=0)).run(pixels, facts)
    tiled = Engine(colour_model).run(pixels, facts)
    assert psnr(whole, pixels) < 35  # the weights really change the image
    assert_same_pixels(tiled, whole)


def test_small_tiles_still_agree(colour_model, q20):
    pixels, facts = q20
    whole = Engine(colour_model, RestoreOptions(tile=0)).run(pixels, facts)
    assert_same_pixels(Engine(colour_model, RestoreOptions(tile=160, overlap=32)).run(pixels, facts), whole)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (33, 17, 3)])
def test_odd_sizes(shape):
    from napari_jpeg_restore.model import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("tiny", variant="qcn")).eval()  # no global branch: padding alone differs
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    im = jpeg(pixels, quality=30)
    decoded, facts = np.asarray(im), facts_from_image(im)
    engine = Engine(model, RestoreOptions(consistency="off"))  # the projection pads its own way (tested apart)
    out = engine.run(decoded, facts)
    # the engine edge-pads to whole 4:2:0 MCUs and crops back: the same as padding by hand
    padded = np.pad(decoded, ((0, (-shape[0]) % 16), (0, (-shape[1]) % 16), (0, 0)), mode="edge")
    assert np.array_equal(out, engine.run(padded, facts)[: shape[0], : shape[1]])
    assert not np.array_equal(out, decoded)


def test_progress_and_cancel(colour_model, q20):
    pixels, facts = q20
    calls = []
    Engine(colour_model, RestoreOptions(tile=256)).run(pixels, facts, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert total > 1 and calls[0] == (0, total) and calls[-1] == (total, total)
    seen = []
    with pytest.raises(RestoreCancelled, match="cancelled after 2 of"):
        Engine(colour_model, RestoreOptions(tile=256)).run(pixels, facts, progress=lambda d, t: seen.append(d),
                                            cancel=lambda: len(seen) > 2)


def test_threads_option_is_restored(colour_model, q20):
    before = torch.get_num_threads()
    Engine(colour_model, RestoreOptions(threads=1, tile=0)).run(*q20)
    assert torch.get_num_threads() == before


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1' is not available"):
            pick_device("cuda:1")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type in (expected, "mps")


def test_mismatched_model_and_image(colour_model):
    gray = jpeg(np.zeros((16, 16), np.uint8), quality=50)
    with pytest.raises(ValueError, match="grayscale pixels.*colour model"):
        Engine(colour_model).run(np.asarray(gray), facts_from_image(gray))


def test_bad_tile_settings(colour_model):
    with pytest.raises(ValueError, match="twice the overlap"):
        Engine(colour_model, RestoreOptions(tile=64, overlap=32))


@pytest.mark.parametrize("code", ["444", "422", "420", "440", "411"])
def test_every_subsampling_restores_at_odd_sizes(colour_model, code):
    import io

    import simplejpeg
    from PIL import Image

    from imaging import data_image

    photo = np.asarray(data_image("LIVE1/parrots.png"))[:37, :53].copy()
    im = Image.open(io.BytesIO(simplejpeg.encode_jpeg(photo, quality=20, colorsubsampling=code)))
    facts = facts_from_image(im)
    pixels = np.asarray(im)
    whole = Engine(colour_model, RestoreOptions(tile=0)).run(pixels, facts)
    assert whole.shape == pixels.shape and psnr(whole, pixels) < 45
    # maps follow the component grid wherever a tile starts: tile 176 starts tiles off the 32-pixel
    # 4:1:1 MCU, so maps built at the tile's (0, 0) would show
    big = np.asarray(data_image("LIVE1/parrots.png"))[:200, :300].copy()
    im = Image.open(io.BytesIO(simplejpeg.encode_jpeg(big, quality=20, colorsubsampling=code)))
    args = np.asarray(im), facts_from_image(im)
    whole = Engine(colour_model, RestoreOptions(tile=0)).run(*args)
    for tile in (128, 176):
        assert_same_pixels(Engine(colour_model, RestoreOptions(tile=tile, overlap=32)).run(*args), whole)


@pytest.mark.parametrize("save", [{"qtables": [[300] * 64, [700] * 64]}, {"qtables": [list(range(1, 65)), [9] * 64]}])
def test_sixteen_bit_and_custom_tables(colour_model, textured, save):
    from dataclasses import replace

    im = jpeg(textured.crop((0, 0, 96, 80)), **save)
    pixels, facts = np.asarray(im), facts_from_image(im)
    out = Engine(colour_model).run(pixels, facts)
    assert psnr(out, pixels) < 40  # the network changed the image
    # the file's own tables reach the maps: any other tables give another result
    other = replace(facts, tables=tuple(np.clip(t, 1, 255) if t.max() > 255 else t + 1 for t in facts.tables))
    assert not np.array_equal(Engine(colour_model).run(pixels, other), out)


def test_strength_scales_the_maps_not_the_output(colour_model, q20):
    pixels, facts = q20
    off = RestoreOptions(tile=0, consistency="off")  # the network alone: what strength tells it
    base = Engine(colour_model, off).run(pixels, facts)
    assert np.array_equal(Engine(colour_model, off.replace(strength=1.0)).run(pixels, facts), base)
    stronger = Engine(colour_model, off.replace(strength=2.0)).run(pixels, facts)
    assert not np.array_equal(stronger, base)
    assert np.array_equal(stronger, Engine(colour_model, off).run(pixels, facts.scaled(2.0)))
    assert facts.scaled(0.01).tables[0].min() == 1.0
    with pytest.raises(ValueError, match="strength must be positive"):
        facts.scaled(0)


def test_precision_auto_is_bfloat16_only_on_a_cpu_with_native_bfloat16(colour_model):
    from napari_jpeg_restore.device import cpu_has_native_bfloat16, run_precision

    assert run_precision("auto", torch.device("cuda")) == "float32"
    assert run_precision("float16", torch.device("cpu")) == "float16"
    assert run_precision("auto", torch.device("cpu")) == ("bfloat16" if cpu_has_native_bfloat16() else "float32")
    # a model given in another layout is copied, never re-laid out under whoever else holds it
    contiguous = colour_model.to(memory_format=torch.contiguous_format)
    engine = Engine(contiguous)
    assert engine.model is not contiguous and engine.model.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert contiguous.head.weight.is_contiguous() and Engine(engine.model).model is engine.model



def _in_a_new_thread(f):
    box = []
    t = threading.Thread(target=lambda: box.append(f()))
    t.start()
    t.join()
    return box[0]


def test_restores_in_threads_each_compute_at_their_own_thread_count(colour_model, q20):
    """torch's thread count is partly process-wide (the count new threads start with, MKL's):
    restores in two threads asking for 1 and 2 threads each compute at theirs, and afterwards the
    process is left as it was."""
    before = _in_a_new_thread(torch.get_num_threads)
    seen: dict[int, set] = {1: set(), 2: set()}
    engines = {n: Engine(colour_model, RestoreOptions(threads=n, tile=64, overlap=16)) for n in seen}
    for n, engine in engines.items():
        restore = engine.model.restore
        engine.model = copy.copy(engine.model)  # both engines share one model: instrument each apart
        engine.model.restore = lambda x, f, n=n, restore=restore: (seen[n].add(torch.get_num_threads()), restore(x, f))[1]
    for _ in range(3):
        start = threading.Barrier(2)
        workers = [threading.Thread(target=lambda n=n: (start.wait(), engines[n].run(*q20))) for n in seen]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert seen == {1: {1}, 2: {2}}
    assert _in_a_new_thread(torch.get_num_threads) == before
