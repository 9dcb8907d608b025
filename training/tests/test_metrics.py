import io

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from qgcn_training.metrics import blocking_effect, psnr, psnr_b, ssim


def test_identical_images():
    a = np.random.default_rng(0).integers(0, 256, (40, 48, 3)).astype(np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    # PSNR-B adds the blocking term of the image under test: zero only when it shows no blocking
    smooth = np.full((40, 48), 77, np.uint8)
    assert psnr_b(smooth, smooth) == float("inf")


def test_known_mse():
    a = np.full((32, 32), 100, np.uint8)
    assert psnr(a + 5, a) == pytest.approx(10 * np.log10(255**2 / 25))


def test_psnr_b_of_errors_on_block_boundaries_only():
    ref = np.full((64, 64), 128.0)
    test = ref.copy()
    test[:, 7::8] += 8  # the last column of every block: steps of 8 across and inside boundaries
    # horizontal pairs: across boundaries (x=7|8, ...) diff 8, inside (x=6|7) diff 8, others 0
    n_h_across, n_h_inside = 7 * 64, 56 * 64  # 7 boundary columns, 56 other pairs per row
    d_b = (7 * 64 * 64) / (n_h_across + 7 * 64)  # plus 7 vertical boundary rows with no difference
    d_c = (8 * 64 * 64) / (n_h_inside + 56 * 64)
    bef = np.log2(8) / np.log2(64) * (d_b - d_c)
    assert blocking_effect(test) == pytest.approx(bef)
    mse = np.mean((test - ref) ** 2)
    assert psnr_b(test, ref) == pytest.approx(10 * np.log10(255**2 / (mse + bef)))
    assert psnr_b(test, ref) < psnr(test, ref)


def test_agrees_with_scikit_image_on_real_images(real_pair):
    buf = io.BytesIO()
    Image.fromarray(real_pair).save(buf, "JPEG", quality=15)
    coded = np.asarray(Image.open(buf))
    assert psnr(coded, real_pair) == pytest.approx(peak_signal_noise_ratio(real_pair, coded, data_range=255), abs=1e-9)
    expected = structural_similarity(real_pair, coded, data_range=255, channel_axis=2, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert ssim(coded, real_pair) == pytest.approx(expected, abs=1e-9)
    gray_ref, gray = (np.asarray(Image.fromarray(x).convert("L")) for x in (real_pair, coded))
    assert ssim(gray, gray_ref) == pytest.approx(structural_similarity(
        gray_ref, gray, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False), abs=1e-9)


def test_gains_summary_signs_and_paper_gains():
    from qgcn_training.evaluate import Row, gains_summary

    rows = [Row("live1", 10, 29, (25.0, 0.7, 21.0), (26.25, 0.8, 24.0), 0.5, "bikes"),
            Row("live1", 90, 29, (40.0, 0.98, 39.0), (39.9, 0.98, 38.0), -0.3, "caps"),
            Row("classic5", 10, 5, (27.0, 0.8, 25.0), (28.5, 0.85, 27.0), 1.0, "lena")]
    table = gains_summary(rows).splitlines()
    assert table[0] == "| PSNR gain over JPEG: ours (paper QGCN) | QF 10 | QF 90 |"
    # ours - JPEG, and the paper's QGCN - JPEG on LIVE1 QF 10 (27.84 - 25.60); no paper cell at QF 90
    assert table[2] == "| live1 | +1.25 (+2.24) | -0.10 |"
    assert table[3].startswith("| classic5 | +1.50") and table[3].endswith(" |  |")
