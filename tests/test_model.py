from dataclasses import replace

import pytest
import torch
from torch import nn

from napari_jpeg_restore.model import PRESETS, VARIANTS, build_model, model_cost, preset
from qgcn_training.warm_start import warm_start  # training-only: it grows networks for a run


def test_paper_preset_is_as_published():
    cfg = PRESETS["paper"]
    assert (cfg.channels, cfg.blocks, cfg.res_scale) == (64, (32, 32), 0.1)
    model = build_model(cfg)
    assert len(model.group1.body) == 33 and len(model.group2.body) == 33  # 32 blocks + conv each
    convs = [m for m in model.global_branch.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (32, 4, 2, 1), (32, 3, 1, 1), (64, 4, 2, 1), (64, 3, 1, 1),
        (128, 4, 2, 1), (128, 3, 1, 1), (256, 4, 2, 1), (256, 3, 1, 1)]
    fc = [m for m in model.global_branch.fc if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(7 * 7 * 256, 1024), (1024, 64)]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("body", ["tiny", "unet", "unet-fine"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("colour", [True, False])
def test_variants_shapes(variant, colour, body):
    cfg = preset(body, colour=colour, variant=variant)
    model = build_model(cfg).eval()
    n_img, n_map = (3, 2) if colour else (1, 1)
    assert cfg.image_channels == n_img and cfg.map_channels == (n_map if variant in ("qgcn", "qcn") else 0)
    x = torch.rand(2, cfg.image_channels + cfg.map_channels, 48, 32)
    g = torch.rand(2, x.shape[1], 112, 112) if cfg.has_global else None
    with torch.no_grad():
        y = model(x, g)
        assert y.shape == (2, n_img, 48, 32)
        # samples never mix in a batch; the output is the image plus a correction
        torch.testing.assert_close(y[1:], model(x[1:], None if g is None else g[1:]), atol=1e-5, rtol=1e-4)
        assert 0 < (y - x[:, :n_img]).abs().mean() < 1
    assert (getattr(model, "global_branch", None) is not None) == (variant == "qgcn")


@pytest.mark.parametrize("name", ["tiny", "unet"])
def test_global_features_change_the_output(name):
    torch.manual_seed(0)
    model = build_model(preset(name)).eval()
    x = torch.rand(1, 5, 32, 32)
    with torch.no_grad():
        a = model.restore(x, torch.zeros(1, 64))
        b = model.restore(x, torch.ones(1, 64))
    assert (a - b).abs().max() > 1e-4


def test_unet_body_levels_and_skips():
    cfg = PRESETS["unet"]
    model = build_model(cfg).eval()
    assert [m.out_channels for m in model.downs] == [64, 128] and [len(e) for e in model.encoders] == [2, 2]
    assert len(model.bottom) == 4 and model.merge.in_channels == 128 + cfg.global_features
    # each output pixel sees the input through the skips: a change at one pixel moves nearby outputs most
    x = torch.rand(1, 5, 64, 64)
    y = x.clone()
    y[0, 0, 31, 31] += 1
    with torch.no_grad():
        d = (model.restore(y) - model.restore(x)).abs()[0].sum(0)
    assert d[28:36, 28:36].sum() > d[:8, :8].sum() and d[31, 31] > 0
    with pytest.raises(ValueError, match="at most 4 levels"):
        replace(cfg, unet_channels=(8,) * 5, unet_blocks=(1,) * 5)


def test_fine_path_grows_from_unet_weights_without_changing_the_output():
    torch.manual_seed(0)
    unet, fine = build_model(preset("unet")).eval(), build_model(preset("unet-fine")).eval()
    warm_start(fine, unet)
    x = torch.rand(2, 5, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fine.restore(x), unet.restore(x), atol=0, rtol=0)
    # training grows it: the zero last conv gets a gradient, and then the output moves at pixel level
    fine.restore(x).square().mean().backward()
    assert fine.fine[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        fine.fine[-1].weight.normal_(0, 0.01)
        y = x.clone()
        y[0, 0, 15, 15] += 1
        d = (fine.restore(y) - fine.restore(x)).abs()[0].sum(0) - (unet.restore(y) - unet.restore(x)).abs()[0].sum(0)
    assert d.abs()[12:19, 12:19].sum() > 0


def test_naf_blocks_at_unets_cost_and_tiles_restore_as_the_whole(random_weights):
    """unet-naf: NAFNet blocks in the U-Net's levels, about unet's MACs per pixel; every operation is
    local (per-pixel layer norm, no pooled attention), so tiles restore exactly as the whole image."""
    import numpy as np

    from imaging import assert_same_pixels, data_image, jpeg
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.jpeg import facts_from_image
    from napari_jpeg_restore.model import NAFBlock
    from napari_jpeg_restore.options import RestoreOptions

    naf, unet = model_cost(PRESETS["unet-naf"]), model_cost(PRESETS["unet"])
    assert abs(naf["macs_per_pixel"] / unet["macs_per_pixel"] - 1) < 0.1
    torch.manual_seed(0)
    model = build_model(preset("unet-naf", variant="qcn")).eval()
    blocks = [m for m in model.modules() if isinstance(m, NAFBlock)]
    assert len(blocks) == 6 + 6 + 12 + 6 + 6
    x = torch.rand(1, 5, 32, 32)
    with torch.no_grad():
        before = model.restore(x)
        for b in blocks:  # scales start at zero (identity blocks); a trained network's are not
            b.beta.normal_(0, 0.5), b.gamma.normal_(0, 0.5)
        assert (model.restore(x) - before).abs().max() > 1e-3
    im = jpeg(data_image("LIVE1/bikes.png").crop((0, 0, 400, 300)), quality=20)
    pixels, facts = np.asarray(im), facts_from_image(im)
    whole = Engine(model, RestoreOptions(tile=0, precision="float32")).run(pixels, facts)
    tiled = Engine(model, RestoreOptions(tile=160, overlap=48, precision="float32")).run(pixels, facts)
    assert_same_pixels(tiled, whole)
    with pytest.raises(ValueError, match="naf blocks need the unet body"):
        replace(PRESETS["small"], block="naf")


def test_warm_start_names_what_differs():
    with pytest.raises(ValueError, match=r"warm start's network differs: .*body 'unet' \(run: 'flat'\)"):
        warm_start(build_model(preset("tiny")), build_model(preset("unet")))
    with pytest.raises(ValueError, match=r"fine_channels 16 \(run: 0\)"):  # a path is never dropped
        warm_start(build_model(preset("unet")), build_model(preset("unet-fine")))
    with pytest.raises(ValueError, match="needs the unet body"):
        replace(PRESETS["small"], fine_channels=8)


def test_costs():
    paper, small = model_cost(PRESETS["paper"]), model_cost(PRESETS["small"])
    assert paper["params"] > 19e6 and paper["weights_fp16_bytes"] == 2 * paper["params"]
    # the restoration branch at 64 channels: 64 blocks of two 3×3 convs at H/2×W/2 dominate
    assert paper["macs_per_pixel"] > 64 * 2 * 9 * 64 * 64 / 4
    assert paper["global_macs_per_image"] > 7 * 7 * 256 * 1024
    assert small["macs_per_pixel"] < paper["macs_per_pixel"] / 5


def test_a_variant_is_one_registered_entry():
    """Adding a variant is one registration: what it takes, its build function and its stages; the
    config's properties, the CLI's choices and the training stages follow from it."""
    import importlib

    from click.testing import CliRunner

    from napari_jpeg_restore.model import VARIANTS, register_variant

    def plain(cfg):  # a throw-away variant: the QCN body fed the image alone, with a stage of its own
        return VARIANTS["edsr"].build(cfg)

    register_variant("plain", maps=False, global_input=False, stages={"tail": lambda n: n.startswith("tail.")})(plain)
    try:
        cfg = preset("tiny", variant="plain")
        assert not cfg.uses_maps and not cfg.has_global and cfg.map_channels == 0
        net = build_model(cfg)
        assert net.restore(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
        from qgcn_training.train import TrainSettings

        assert TrainSettings(data=[], out="x", variant="plain", train_only="tail").train_only == "tail"
        with pytest.raises(ValueError, match="no stage 'global'"):
            TrainSettings(data=[], out="x", variant="plain", train_only="global")
        import qgcn_training.cli as cli

        importlib.reload(cli)  # the choices are read when the command is made
        help_text = CliRunner().invoke(cli.main, ["train", "--help"]).output
        assert "plain" in help_text and "tail" in help_text
    finally:
        del VARIANTS["plain"]
        importlib.reload(cli)
