"""The MrGAN networks match the paper's appendix (layer list, shapes, parameter count, init)."""

from __future__ import annotations

import torch

from train.gan_networks import GanNetworks, InstanceNorm, build_discriminator, build_generator, layer_list


def test_generator_is_the_appendix_network():
    g = build_generator(GanNetworks())
    assert layer_list(g) == ["c7s1-32", "d64", "d128"] + ["R128"] * 9 + ["u64", "u32", "c7s1-3"]
    n = sum(p.numel() for p in g.parameters())
    assert 2.80e6 < n < 2.90e6  # about 2.85 M with 9 residual blocks
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1.0  # tanh: images in [-1, 1]
    assert layer_list(build_generator(GanNetworks(residual_blocks=3))).count("R128") == 3


def test_discriminator_widths_follow_the_image_size():
    cfg = GanNetworks()
    small, large = build_discriminator(cfg, 32), build_discriminator(cfg, 256)
    assert layer_list(small) == ["C64", "C128", "out1"]
    assert layer_list(large) == ["C64", "C128", "C256", "C512", "out1"]
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 7, 7)  # a score per overlapping patch
    assert layer_list(build_discriminator(GanNetworks(discriminator=(32, 64, 128)), 32)) == ["C32", "C64", "C128",
                                                                                            "out1"]


def test_init_as_the_appendix_says():
    torch.manual_seed(0)
    g = build_generator(GanNetworks(residual_blocks=2))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in g.modules() if isinstance(m, InstanceNorm)]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.mean()) < 2e-3 and abs(w.std() - 0.02) < 2e-3
    assert all(c.bias.abs().max() == 0 for c in convs)
    scales = torch.cat([n.weight for n in norms])
    assert abs(scales.mean()) < 0.01 and all(n.bias.abs().max() == 0 for n in norms)
    ref = build_generator(GanNetworks(residual_blocks=2, norm_scale_mean=1.0))
    assert abs(torch.cat([n.weight for n in ref.modules() if isinstance(n, InstanceNorm)]).mean() - 1) < 0.01


def test_instance_norm_is_torchs_instance_norm_in_any_memory_format():
    torch.manual_seed(0)
    ours, ref = InstanceNorm(8), torch.nn.InstanceNorm2d(8, affine=True)
    torch.nn.init.normal_(ours.weight)
    torch.nn.init.normal_(ours.bias)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 6, 5) * 4 + 2
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert torch.allclose(ours(x.contiguous(memory_format=torch.channels_last)), ref(x), atol=1e-5)


def test_identity_skip_starts_as_the_identity_and_learns():
    torch.manual_seed(0)
    g = build_generator(GanNetworks(filters=8, residual_blocks=1, identity_skip=True))
    levels = torch.arange(256, dtype=torch.float32)
    x = (levels / 127.5 - 1).reshape(1, 1, 16, 16).expand(2, 3, 16, 16).contiguous()  # every level 0..255
    y = g(x)
    err = (y - x).abs() * 127.5
    inner = (x.abs() <= 0.99)
    assert err[inner].max() < 1e-3 and err.max() < 1.3  # exact inside, at most 1.3 levels at 0 and 255
    # the plain generator is far from the identity at init: the skip is what makes the difference
    plain = build_generator(GanNetworks(filters=8, residual_blocks=1))
    assert ((plain(x) - x).abs() * 127.5).mean() > 20
    # the residual starts at zero but is trainable: a few steps toward another image lower that loss
    target = x.flip(-1)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = (g(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert layer_list(g)[-1] == "c7s1-3"
