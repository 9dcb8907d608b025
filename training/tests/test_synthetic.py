import numpy as np
import pytest

from napari_jpeg_restore.blind import estimate
from napari_jpeg_restore.model import preset
from napari_jpeg_restore.network_io import NetworkIO
from qgcn_training.data import JpegVariety, PatchSampler
from qgcn_training.synthetic import KINDS, draw_synthetic, validation_images


def _flat_share(img: np.ndarray) -> float:
    """Share of 8×8 blocks with (nearly) no variation: what photos rarely have."""
    g = img if img.ndim == 2 else img.mean(2)
    h, w = (s // 8 * 8 for s in g.shape)
    blocks = g[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    return float((blocks < 0.5).mean())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gray", [False, True])
def test_each_kind_draws_a_deterministic_image_of_its_size(kind, gray):
    a = draw_synthetic(72, np.random.default_rng(3), gray=gray, kind=kind)
    b = draw_synthetic(72, np.random.default_rng(3), gray=gray, kind=kind)
    assert a.dtype == np.uint8 and a.shape == ((72, 72) if gray else (72, 72, 3))
    assert np.array_equal(a, b) and not np.array_equal(a, draw_synthetic(72, np.random.default_rng(4), gray=gray,
                                                                           kind=kind))
    assert np.ptp(a) > 10  # something was drawn, not a blank square


def test_validation_set_is_fixed_and_mostly_flat_graphic_content():
    images = validation_images()
    assert [n for n, _ in images][:5] == ["text0", "text1", "text2", "text3", "lines0"] and len(images) == 20
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(images, validation_images()))
    drawn = [img for name, img in images if not name.startswith("gradient")]
    # flat areas and hard edges, unlike photos; not a blind-mode "JPEG" either: never coded
    assert np.mean([_flat_share(img) for img in drawn]) > 0.2
    assert all(estimate(img).facts is None for _, img in images[:4])


@pytest.mark.parametrize("gray", [False, True])
def test_sampler_draws_the_synthetic_share(gray):
    # a flat grey pool: every photo patch is constant, every drawn one is not
    pool = [(np.full((320, 320) if gray else (320, 320, 3), 128, np.uint8), False)]
    io = NetworkIO(preset("tiny", colour=not gray), global_on=False)
    drawn = {}
    for share in (0.0, 0.5):
        sampler = PatchSampler(pool, io, patch=64, variety=JpegVariety(synthetic_share=share))
        gts = [sampler.sample(np.random.default_rng(k))[0] for k in range(60)]
        assert all(gt.shape == ((64, 64) if gray else (64, 64, 3)) for gt in gts)
        drawn[share] = sum(np.ptp(gt) > 0 for gt in gts)
    assert drawn[0.0] == 0 and 18 <= drawn[0.5] <= 42
