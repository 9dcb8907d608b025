import numpy as np
import pytest
from PIL import Image

from napari_jpeg_restore.jpeg import facts_from_image, ijg_tables
from napari_jpeg_restore.model import preset
from napari_jpeg_restore.network_io import NetworkIO
from qgcn_training.data import JpegVariety, PatchSampler, encode, make_tables

PATCH = np.random.default_rng(0).integers(0, 256, (72, 72, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["ijg", "ijg16", "perturbed", "flat", "tilted", "shared"])
@pytest.mark.parametrize("sub, sampling", [("4:4:4", (1, 1)), ("4:2:2", (2, 1)), ("4:2:0", (2, 2))])
def test_families_and_samplings_read_back(family, sub, sampling):
    quality = 8
    im = encode(PATCH, quality, family, sub, np.random.default_rng(5))
    facts = facts_from_image(im)
    expected = make_tables(family, quality, np.random.default_rng(5)) if family != "ijg" else \
        [t.ravel().tolist() for t in ijg_tables(quality)]
    assert facts.tables[0].ravel().tolist() == expected[0]
    assert facts.tables[1].ravel().tolist() == expected[1]
    assert facts.sampling[0] == sampling
    if family == "flat":
        assert len(set(expected[0])) == 1
    if family == "shared":
        assert expected[0] == expected[1] and np.array_equal(facts.tables[0], facts.tables[0].T)
    if family == "ijg":
        assert expected[0] == ijg_tables(quality)[0].ravel().tolist()
    if family == "ijg16":
        assert facts.tables[0].max() > 255  # a 16-bit DQT
        assert facts.tables[0][0, 0] == ijg_tables(quality)[0][0, 0]  # same scaling below the clamp


@pytest.mark.parametrize("sub, sampling", [("4:4:0", (1, 2)), ("4:1:1", (4, 1))])
def test_subsamplings_pillow_cannot_write(sub, sampling):
    im = encode(PATCH, 30, "perturbed", sub, np.random.default_rng(0))
    facts = facts_from_image(im)
    assert facts.sampling[0] == sampling and facts.subsampling == sub
    np.testing.assert_array_equal(facts.tables[0], ijg_tables(30)[0])  # IJG tables: the only ones it takes


def test_paper_setting():
    v = JpegVariety.paper()
    assert v.low_qf == (1, 60) and v.high_share == 0 and v.families == {"ijg": 1.0} and v.double_share == 0


def test_double_compression_and_jpeg_ground_truth_cap():
    pool = [(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8), True)]
    v = JpegVariety(double_share=1.0, shifted_share=0.5, high_share=1.0, high_qf=(90, 100), families={"ijg": 1.0},
                    synthetic_share=0.0)  # drawn patches are not JPEGs: no cap for them
    sampler = PatchSampler(pool, NetworkIO(preset("tiny"), global_on=False), patch=64, variety=v)
    for k in range(20):
        gt, im, _ = sampler.sample(np.random.default_rng(k))
        facts = facts_from_image(im)
        assert gt.shape == (64, 64, 3) and im.size == (64, 64)
        # ground truth that is itself a JPEG never serves above QF 85
        assert np.array_equal(facts.tables[0], ijg_tables(85)[0])


@pytest.mark.parametrize("shifted_share", [1.0, 0.0])
def test_double_compression_shifts_the_first_grid(shifted_share):
    from napari_jpeg_restore.blind import estimate
    from shared_data import DATA, need

    with Image.open(need(DATA / "LIVE1" / "parrots.png")) as im:
        pool = [(np.asarray(im.convert("RGB")), False)]
    # the second coding at QF 100 is nearly invisible: the blocking blind mode finds is the first one's
    v = JpegVariety(double_share=1.0, shifted_share=shifted_share, high_share=1.0, high_qf=(100, 100),
                    families={"ijg": 1.0}, subsamplings={"4:4:4": 1.0})
    sampler = PatchSampler(pool, NetworkIO(preset("tiny"), global_on=False), patch=192, variety=v)
    found = [estimate(np.asarray(sampler.sample(np.random.default_rng(k))[1])) for k in range(12)]
    offsets = [f.grid_offset for f in found if f.quality is not None]  # a first QF above ~90 shows no steps
    assert len(offsets) >= 5
    if shifted_share:
        assert all(o != (0, 0) for o in offsets), offsets
    else:
        assert all(o == (0, 0) for o in offsets), offsets


def test_batches_are_a_function_of_step():
    pool = [(np.random.default_rng(2).integers(0, 256, (260, 270, 3), dtype=np.uint8), False)]
    sampler = PatchSampler(pool, NetworkIO(preset("tiny")), patch=32)
    a, b = sampler.batch(7, 3), sampler.batch(7, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[1].shape == (3, 5, 112, 112) and a[0].shape == (3, 5, 32, 32)
    assert not np.array_equal(a[0], sampler.batch(8, 3)[0])


@pytest.mark.parametrize("sub", ["4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1"])
@pytest.mark.parametrize("family", ["ijg", "perturbed"])
def test_gray_patches_take_any_drawn_subsampling(sub, family):
    im = encode(PATCH[..., 0].copy(), 30, family, sub, np.random.default_rng(0))
    facts = facts_from_image(im)
    assert im.mode == "L" and len(facts.tables) == 1 and facts.sampling == ((1, 1),)


def test_16_bit_tables_are_coded_without_libjpeg_lines_on_the_console(capfd):
    rng = np.random.default_rng(0)
    im = encode(np.zeros((16, 16, 3), np.uint8), 3, "ijg16", "4:2:0", rng)
    assert max(facts_from_image(im).tables[0].ravel()) > 255  # the 16-bit table is in the file
    captured = capfd.readouterr()
    assert "too coarse" not in captured.err and "too coarse" not in captured.out


def test_records_before_high_share_read_as_its_complement():
    # older records (the shipped models' among them) store low_share
    assert JpegVariety.from_dict({"low_share": 0.4}).high_share == pytest.approx(0.6)
    assert JpegVariety.from_dict({"high_share": 0.2}) == JpegVariety(high_share=0.2)


def test_smoothed_chroma_patches_keep_luma_and_lose_chroma_detail():
    from napari_jpeg_restore.color import rgb_to_ycbcr_levels
    from shared_data import DATA, need

    with Image.open(need(DATA / "WikiPhotos49" / "001.png")) as im:
        pool = [(np.asarray(im.convert("RGB")), False)]
    io = NetworkIO(preset("tiny"), global_on=False)

    def patches(share, jpeg_truth=False):
        v = JpegVariety(smooth_chroma_share=share, synthetic_share=0.0, double_share=0.0)
        sampler = PatchSampler([(pool[0][0], jpeg_truth)], io, patch=64, variety=v)
        return [sampler.sample(np.random.default_rng(k))[0] for k in range(30)]

    def detail(gt):  # mean square step between neighbours, per Y, Cb, Cr
        return np.mean(np.diff(rgb_to_ycbcr_levels(gt), axis=2) ** 2, axis=(1, 2))

    as_is, smoothed = patches(0.0), patches(1.0)
    assert all(gt.shape == (64, 64, 3) and gt.dtype == np.uint8 for gt in smoothed)
    before, after = np.mean([detail(g) for g in as_is], 0), np.mean([detail(g) for g in smoothed], 0)
    assert np.all(after[1:] < 0.5 * before[1:])  # chroma detail gone
    assert abs(after[0] / before[0] - 1) < 0.05  # luma kept (up to rounding to RGB)
    # the same crops, and a truth that is itself a JPEG is left as it is
    assert all(np.abs(a.astype(int) - s.astype(int)).mean() < 8 for a, s in zip(as_is, smoothed))
    assert all(np.array_equal(a, j) for a, j in zip(as_is, patches(1.0, jpeg_truth=True)))
