"""The CycleGAN networks of the paper's appendix (MrGAN issue), in CycleGAN notation.

Generator: c7s1-32, d64, d128, R128 x n, u64, u32, c7s1-3
    c7s1-k  7x7 convolution, stride 1, k filters, reflection padding, instance norm, ReLU
    dk      3x3 convolution, stride 2, k filters, instance norm, ReLU
    Rk      residual block: two 3x3 convolutions of k filters (reflection padding, instance norm)
    uk      3x3 transposed convolution, stride 1/2, k filters, instance norm, ReLU
    the last c7s1-3 has no norm and a tanh: images in [-1, 1]
Discriminator (PatchGAN): Ck = 4x4 convolution, stride 2, k filters, instance norm (none on the first),
    LeakyReLU 0.2; then a 4x4 convolution to one channel: a real/fake score per overlapping patch.
    C64, C128 for 32 px images (the CIFAR-DA4 setting); C64, C128, C256, C512 at 256 px.

Init (appendix): convolution weights and norm scales ~ N(0, 0.02), every other parameter 0. The CycleGAN
reference code draws norm scales around 1 instead; `norm_scale_mean` selects either.

`identity_skip` (not in the appendix; off by default) adds the input to the generator's output before its tanh,
G(x) = tanh(atanh(x) + net(x)), with the last convolution started at zero: the generator *is* the identity
from the first step, instead of learning it in pre-training. Measured at 32 px (docs/RESULTS.md): 600 steps
of L1 pre-training leave the appendix generator at a mean error of 0.25 on [-1, 1], its outputs blurred, so
every stage starts from a blurred copy of its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GanNetworks:
    filters: int = 32  # of the first generator layer (c7s1-32); the rest scale with it
    residual_blocks: int = 9
    # discriminator widths; None: C64, C128 up to 64 px images, C64, C128, C256, C512 above
    discriminator: tuple[int, ...] | None = None
    init_std: float = 0.02
    norm_scale_mean: float = 0.0  # appendix: N(0, 0.02); the CycleGAN reference code uses 1.0
    identity_skip: bool = False  # G(x) = tanh(atanh(x) + net(x)), starting as the identity (module doc)

    def discriminator_widths(self, image_size: int) -> tuple[int, ...]:
        if self.discriminator is not None:
            return tuple(self.discriminator)
        return (64, 128) if image_size <= 64 else (64, 128, 256, 512)


class InstanceNorm(nn.GroupNorm):
    """Instance normalisation with a learnt scale and shift per channel, as GroupNorm with one channel per
    group: the same maths as nn.InstanceNorm2d(affine=True), but GroupNorm's kernels take channels_last
    tensors as they are, where InstanceNorm2d copies them to NCHW and back at every layer."""

    def __init__(self, channels: int):
        super().__init__(channels, channels, eps=1e-5, affine=True)


def _norm(channels: int) -> InstanceNorm:
    return InstanceNorm(channels)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# atanh's argument is kept inside +-SKIP_LIMIT: pixels at 0 or 255 would otherwise sit where tanh has no
# gradient left; the identity is then exact for levels 2..253 and off by at most 1.3 levels at the ends
SKIP_LIMIT = 0.99


class Generator(nn.Module):
    """c7s1-f, d2f, d4f, R4f x n, u2f, uf, c7s1-3 (f = 32 in the appendix)."""

    def __init__(self, filters: int = 32, residual_blocks: int = 9, identity_skip: bool = False):
        super().__init__()
        self.identity_skip = identity_skip
        f = filters
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, f, 7), _norm(f), nn.ReLU(inplace=True)]
        for cin, cout in ((f, 2 * f), (2 * f, 4 * f)):  # d64, d128
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), _norm(cout), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(4 * f) for _ in range(residual_blocks)]
        for cin, cout in ((4 * f, 2 * f), (2 * f, f)):  # u64, u32
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), _norm(cout),
                       nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(f, 3, 7)]
        self.net = nn.Sequential(*layers)  # the tanh is applied in forward (after the skip, if any)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if self.identity_skip:
            h = h + torch.atanh(x.clamp(-SKIP_LIMIT, SKIP_LIMIT))
        return torch.tanh(h)


class PatchDiscriminator(nn.Module):
    """C{w0}, C{w1}, ... then a 4x4 convolution to one score per patch (least-squares targets)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(cin, w, 4, stride=2, padding=1))
            if i > 0:
                layers.append(_norm(w))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = w
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(module: nn.Module, std: float = 0.02, norm_scale_mean: float = 0.0) -> None:
    """Convolution weights ~ N(0, std); norm scales ~ N(norm_scale_mean, std); biases and shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, norm_scale_mean, std)
            nn.init.zeros_(m.bias)


def build_generator(cfg: GanNetworks) -> Generator:
    g = Generator(cfg.filters, cfg.residual_blocks, cfg.identity_skip)
    init_weights(g, cfg.init_std, cfg.norm_scale_mean)
    if cfg.identity_skip:  # the residual starts at zero: G starts as the identity
        last = g.net[-1]
        nn.init.zeros_(last.weight)
    return g


def build_discriminator(cfg: GanNetworks, image_size: int) -> PatchDiscriminator:
    d = PatchDiscriminator(cfg.discriminator_widths(image_size))
    init_weights(d, cfg.init_std, cfg.norm_scale_mean)
    return d


def layer_list(module: Generator | PatchDiscriminator) -> list[str]:
    """The network in CycleGAN notation, read back from its layers (what the tests compare with the
    appendix); the discriminator's last layer reads "out1"."""
    names = {(7, 1): "c7s1-", (3, 2): "d", (4, 2): "C", (4, 1): "out"}
    out: list[str] = []
    for m in module.net:
        if isinstance(m, ResidualBlock):
            out.append(f"R{m.body[1].out_channels}")
        elif isinstance(m, nn.ConvTranspose2d):
            out.append(f"u{m.out_channels}")
        elif isinstance(m, nn.Conv2d):
            out.append(f"{names[(m.kernel_size[0], m.stride[0])]}{m.out_channels}")
    return out
