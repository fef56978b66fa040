"""Tests of the APL networks (G_ws, G_sr and its ablation variants, D) and the summary."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from apl.models import (
    UFAT,
    VARIANTS,
    DefocusDetector,
    Discriminator,
    SelfReferencedDeblurrer,
    format_summary,
    summarize,
)
from apl.models import detector as detector_module
from apl.models.deblurrer import UFATResBlock

TINY = 8  # channel width of the fast test networks
SIZES = (64, 96, 160)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


_DEFAULT_THREADS = torch.get_num_threads()


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """The tiny networks run fastest single-threaded: with 2 threads on a busy
    2-core machine, OpenMP synchronisation made 5 ms forwards take ~1 s."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(_DEFAULT_THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _image(n=2, size=64, device="cpu"):
    return torch.rand(n, 3, size, size, device=device)


def _soft_map(n=2, size=64, device="cpu"):
    return 0.1 + 0.8 * torch.rand(n, 1, size, size, device=device)


def _binary_map(n=2, size=64):
    m = torch.zeros(n, 1, size, size)
    m[..., : size // 2] = 1.0  # left half in focus
    return m


def _assert_all_grads(module: nn.Module):
    missing = [name for name, p in module.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    zero = [name for name, p in module.named_parameters() if not torch.any(p.grad != 0)]
    assert not zero, f"parameters with all-zero gradient: {zero}"
    bad = [name for name, p in module.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"parameters with non-finite gradient: {bad}"


# --------------------------------------------------------------------------- G_ws
@pytest.mark.parametrize("size", SIZES)
def test_detector_shape_and_range(size):
    net = DefocusDetector(width=TINY)
    x = _image(2, size)
    m = net(x)
    assert m.shape == (2, 1, size, size)
    assert m.min() >= 0 and m.max() <= 1
    logits = net.forward_logits(x)
    assert logits.shape == (2, 1, size, size)
    torch.testing.assert_close(torch.sigmoid(logits), m)


def test_detector_input_checks_and_odd_sizes():
    net = DefocusDetector(width=TINY)
    with pytest.raises(ValueError):
        net(torch.rand(1, 1, 64, 64))  # not RGB
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 4, 4))  # too small to pool three times
    assert net(torch.rand(1, 3, 60, 84)).shape == (1, 1, 60, 84)  # not a multiple of 8, not square


def test_detector_gradients_reach_every_parameter():
    net = DefocusDetector(width=TINY)
    x = _image(2, 64)
    out = net(x)
    (out * torch.randn_like(out)).sum().backward()
    _assert_all_grads(net)


def test_detector_init_is_normal_001():
    net = DefocusDetector(width=TINY)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.std().item() - 0.01) < 0.001
    assert abs(w.mean().item()) < 0.001


def test_detector_layout_widths():
    net = DefocusDetector(width=TINY)
    convs = net.encoder_convs()
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64]
    assert net.head.in_channels == TINY // 2 and net.head.out_channels == 1
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())


def test_detector_pretrained_requires_width_64():
    with pytest.raises(ValueError, match="width"):
        DefocusDetector(width=32, pretrained=True)


def test_detector_pretrained_offline_raises_with_cache_path(monkeypatch):
    import torchvision.models._api as tv_api

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as info:
        DefocusDetector(width=64, pretrained=True)
    msg = str(info.value)
    assert torch.hub.get_dir() in msg and "checkpoints" in msg and "vgg16-" in msg


def test_detector_pretrained_loads_vgg_kernels(monkeypatch):
    import torchvision.models._api as tv_api

    shapes = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
              (512, 256), (512, 512), (512, 512)]
    fake = {}
    for idx, (cout, cin) in zip(detector_module._VGG16_CONV_INDICES, shapes):
        fake[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3)
        fake[f"features.{idx}.bias"] = torch.randn(cout)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", lambda *a, **k: fake)
    net = DefocusDetector(width=64, pretrained=True)
    for conv, idx in zip(net.encoder_convs(), detector_module._VGG16_CONV_INDICES):
        assert torch.equal(conv.weight, fake[f"features.{idx}.weight"])


# --------------------------------------------------------------------------- G_sr
def _trained_deblurrer(variant: str) -> SelfReferencedDeblurrer:
    """A G_sr whose output conv is no longer zero, as after training (a fresh one is the identity)."""
    net = SelfReferencedDeblurrer(variant, width=TINY)
    torch.nn.init.normal_(net.output_conv.weight, 0.0, 0.1)
    return net


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", SIZES)
def test_deblurrer_shapes_and_range(variant, size):
    net = SelfReferencedDeblurrer(variant, width=TINY)
    x, m = _image(1, size), _soft_map(1, size)
    res = net(x, m) if variant != "ugan" else net(x)
    assert set(res) == {"out", "reconstruction", "unclamped"}
    for key in ("out", "reconstruction"):
        assert res[key].shape == (1, 3, size, size)
        assert res[key].min() >= 0 and res[key].max() <= 1
    if variant == "ugan":
        assert torch.equal(res["out"], res["reconstruction"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_deblurrer_gradients_reach_every_parameter(variant):
    net = _trained_deblurrer(variant)
    x = _image(2, 64)
    m = _soft_map(2, 64).requires_grad_(True)
    out = net(x, m)["out"]
    (out * torch.randn_like(out)).sum().backward()
    _assert_all_grads(net)
    if variant == "ugan":
        assert m.grad is None  # the focus map is not consumed at all
    else:  # G_ws is trained through G_sr: the map must receive gradient
        assert m.grad is not None and torch.any(m.grad != 0)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "ugan"])
def test_composite_keeps_focused_pixels_exactly(variant):
    net = _trained_deblurrer(variant)
    x, m = _image(2, 64), _binary_map(2, 64)
    out = net(x, m)["out"]
    keep = m.expand_as(x) == 1
    assert torch.equal(out[keep], x[keep])
    assert not torch.equal(out[~keep], x[~keep])  # the defocused half is reconstructed


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_consumes_what_it_should(variant):
    net = _trained_deblurrer(variant).eval()
    x = _image(2, 64)
    m1, m2 = _soft_map(2, 64), _soft_map(2, 64)
    with torch.no_grad():
        r1 = net(x, m1)["reconstruction"]
        r2 = net(x, m2)["reconstruction"]
        if variant == "ugan":
            assert torch.equal(r1, r2)
            assert torch.equal(net(x)["out"], r1)
            assert not torch.equal(net(_image(2, 64))["out"], r1)
            return
        if variant == "guard":   # R never reads the map; the composite does, and only through M
            assert torch.equal(r1, r2)
            out = net(x, m1)["out"]
            assert torch.allclose(out, (r1 * (1 - m1) + x * m1).clamp(0, 1), atol=1e-6)
            assert not torch.allclose(out, net(x, m2)["out"])
            return
        assert not torch.allclose(r1, r2)
        # The reference I_f is consumed: change only the focused content, keep I_df identical.
        mb = _binary_map(2, 64)
        x2 = torch.where(mb == 1, torch.rand_like(x), x)
        assert torch.equal((1 - mb) * x, (1 - mb) * x2)
        ra = net(x, mb)["reconstruction"]
        rb = net(x2, mb)["reconstruction"]
        assert not torch.allclose(ra, rb)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "ugan"])
def test_focus_map_required(variant):
    with pytest.raises(ValueError):
        SelfReferencedDeblurrer(variant, width=TINY)(_image(1, 64))


def test_unknown_variant_errors():
    with pytest.raises(ValueError) as info:
        SelfReferencedDeblurrer("sftgan", width=TINY)
    for v in VARIANTS:
        assert v in str(info.value)


def test_variant_structure():
    assert VARIANTS == ("ugan", "dcgan", "cdfgan", "ufat", "guard")
    guard, ugan = (SelfReferencedDeblurrer(v, width=TINY) for v in ("guard", "ugan"))
    assert [tuple(p.shape) for p in guard.parameters()] == [tuple(p.shape) for p in ugan.parameters()]
    ufat = SelfReferencedDeblurrer("ufat", width=TINY, stages=(2, 3, 2))
    assert sum(isinstance(m, UFATResBlock) for m in ufat.modules()) == 2
    assert sum(isinstance(m, UFAT) for m in ufat.modules()) == 4
    assert [len(s.body) // 3 for s in ufat.stages] == [2, 3, 2]
    assert SelfReferencedDeblurrer("dcgan", width=TINY).input_conv[0].in_channels == 6
    for v in ("ugan", "dcgan", "cdfgan", "guard"):
        assert not any(isinstance(m, UFAT) for m in SelfReferencedDeblurrer(v, width=TINY).modules())


def test_ufat_is_channelwise_affine_and_resolution_free():
    ufat = UFAT(width=TINY).eval()
    i_f, i_df = _image(2, 64), _image(2, 64)
    with torch.no_grad():
        f = torch.randn(2, TINY, 32, 32)  # features at another resolution than the images
        u0 = ufat(torch.zeros_like(f), i_f, i_df)
        u1 = ufat(f, i_f, i_df)
        u2 = ufat(2 * f, i_f, i_df)
    assert u1.shape == f.shape
    # beta is a per-channel constant, eta a per-channel gain in (0, 1)
    assert torch.allclose(u0, u0[..., :1, :1].expand_as(u0))
    torch.testing.assert_close(u2 - u1, u1 - u0, atol=1e-5, rtol=1e-5)
    eta = (u1 - u0) / f
    assert torch.allclose(eta, eta[..., :1, :1].expand_as(eta), atol=1e-4)
    assert eta.min() > 0 and eta.max() < 1


# --------------------------------------------------------------------------- D
@pytest.mark.parametrize("kind", ["paper", "release"])
@pytest.mark.parametrize("size", SIZES)
def test_discriminator_logits(kind, size):
    net = Discriminator(width=TINY, kind=kind, image_size=size, fc_width=32)
    y = net(_image(3, size))
    assert y.shape == (3,)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind", ["paper", "release", "patch"])
def test_discriminator_gradients_reach_every_parameter(kind):
    net = Discriminator(width=TINY, kind=kind, fc_width=32)
    y = net(_image(2, 64))
    target = torch.tensor([1.0, 0.0]).view(2, *[1] * (y.dim() - 1)).expand_as(y)
    nn.functional.binary_cross_entropy_with_logits(y, target).backward()
    _assert_all_grads(net)


def test_patch_discriminator_judges_each_region_apart():
    """One logit per cell of the stride-8 grid; changing one corner of the image leaves the far corner's verdicts."""
    torch.manual_seed(0)
    net = Discriminator(width=TINY, kind="patch", fc_width=32).eval()
    image = _image(1, 96)
    logits = net(image)
    assert logits.shape == (1, 12 * 12)
    changed = image.clone()
    changed[..., :24, :24] = 1 - changed[..., :24, :24]
    moved = (net(changed) - logits).abs().view(12, 12) > 1e-6
    assert moved[:3, :3].all() and not moved[6:, 6:].any()


def test_discriminator_unknown_kind():
    with pytest.raises(ValueError):
        Discriminator(width=TINY, kind="pixel")


# --------------------------------------------------------------------------- common
def _tiny_nets():
    return {
        "G_ws": (DefocusDetector(width=TINY), 1),
        **{f"G_sr_{v}": (SelfReferencedDeblurrer(v, width=TINY), 2) for v in VARIANTS},
        "D_paper": (Discriminator(width=TINY, kind="paper", fc_width=32), 1),
        "D_release": (Discriminator(width=TINY, kind="release", fc_width=32), 1),
    }


def _run(net, n_inputs, x, m):
    y = net(x, m) if n_inputs == 2 else net(x)
    return y["out"] if isinstance(y, dict) else y


@pytest.mark.parametrize("name", list(_tiny_nets()))
def test_state_dict_round_trip(name):
    net, n_in = _tiny_nets()[name]
    x, m = _image(2, 64), _soft_map(2, 64)
    net.train()
    with torch.no_grad():
        _run(net, n_in, x, m)  # updates BatchNorm running statistics
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    clone, _ = _tiny_nets()[name]
    clone.load_state_dict(torch.load(buf, weights_only=True))
    net.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(_run(net, n_in, x, m), _run(clone, n_in, x, m))


@pytest.mark.parametrize("device", DEVICES)
def test_networks_follow_input_device(device):
    for name, (net, n_in) in _tiny_nets().items():
        net = net.to(device)
        x, m = _image(1, 64, device), _soft_map(1, 64, device)
        y = _run(net, n_in, x, m)
        assert y.device.type == device, name
        y.float().mean().backward()


def test_paper_scale_forward_160():
    torch.set_num_threads(_DEFAULT_THREADS)  # one big forward: use every core
    try:
        x = _image(1, 160)
        with torch.no_grad():
            g_ws = DefocusDetector().eval()
            m = g_ws(x)
            assert m.shape == (1, 1, 160, 160) and 0 <= m.min() and m.max() <= 1
            g_sr = SelfReferencedDeblurrer("ufat").eval()
            res = g_sr(x, m)
            assert res["out"].shape == (1, 3, 160, 160)
            assert 0 <= res["out"].min() and res["out"].max() <= 1
            for kind in ("paper", "release"):
                assert Discriminator(kind=kind).eval()(res["out"]).shape == (1,)
    finally:
        torch.set_num_threads(1)
    assert sum(p.numel() for p in g_sr.parameters()) == 7_812_099
    assert sum(p.numel() for p in g_ws.parameters()) == 8_663_969


# --------------------------------------------------------------------------- summary
def test_summary_counts():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    rows = summarize({"conv": conv, "G_sr": SelfReferencedDeblurrer("ufat", width=TINY)}, size=8)
    assert [r["name"] for r in rows] == ["conv", "G_sr"]
    assert rows[0]["parameters"] == 3 * 4 * 9 + 4
    # FlopCounterMode: multiply-add = 2 FLOPs -> 2 * H * W * Cout * Cin * k * k
    assert rows[0]["gflops"] == pytest.approx(2 * 8 * 8 * 4 * 3 * 9 / 1e9)
    assert rows[1]["gflops"] > 0
    table = format_summary(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and "GFLOPs" in lines[0] and "G_sr" in lines[3]
    assert len({len(line) for line in lines}) == 1  # aligned


@pytest.mark.parametrize("variant", VARIANTS)
def test_fresh_deblurrer_is_the_identity_for_any_map(variant):
    """skip = image with a zero output conv: before training G_sr changes no pixel, whatever M is."""
    net = SelfReferencedDeblurrer(variant, width=TINY).eval()
    x, m = _image(2, 64), _soft_map(2, 64)
    with torch.no_grad():
        res = net(x, m)
    assert torch.allclose(res["out"], x, atol=1e-6) and torch.allclose(res["reconstruction"], x, atol=1e-6)


def test_defocused_skip_darkens_under_a_soft_map():
    """The release's skip adds I_df = (1 - M) I back: with M = 0.5 an untrained R is about half the image."""
    net = SelfReferencedDeblurrer("ufat", width=TINY, skip="defocused").eval()
    torch.nn.init.zeros_(net.output_conv.weight)
    torch.nn.init.zeros_(net.output_conv.bias)
    x = _image(1, 64)
    with torch.no_grad():
        r = net(x, torch.full((1, 1, 64, 64), 0.5))["reconstruction"]
    assert torch.allclose(r, 0.5 * x, atol=1e-6)


def test_clamp_modes_gradient_outside_range():
    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    from apl.models.deblurrer import CLAMPS
    CLAMPS["hard"](x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]
    x.grad = None
    CLAMPS["straight_through"](x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
