"""One CycleGAN stage of MrGAN: the losses and the fixed training step, with its state kept explicit.

Domains: S (synthetic) and R (real). G_sr maps S -> R, G_rs maps R -> S; D_r tells real from refined
synthetic, D_s synthetic from refined real. One training iteration (the appendix's schedule):

    forward -> backward_G, G_UPDATES times (least-squares adversarial + 10 x cycle + 0.1 x L1 to the input)
            -> backward_D once (least-squares, on fakes drawn from an image pool, with noisy targets)

Discriminator targets are smoothed (real ~ U(0.7, 1.2), fake ~ U(0.0, 0.3)) and each one is swapped for the
other kind with probability 1 - label_keep. The appendix says the labels are "flipped with probability 0.9";
flipping nine labels in ten would teach D the opposite of its task, so mixreal reads it as *kept* with 0.9
(flipped with 0.1), and `label_keep` is a parameter.

Every batch is class-aligned (appendix section 5): the real image paired with each synthetic image is drawn
from the same class (`aligned_real`). Images enter as uint8 (N, 3, H, W) and are mapped to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .gan_networks import GanNetworks, build_discriminator, build_generator

Range = tuple[float, float]


@dataclass(frozen=True)
class CycleGanConfig:
    iterations: int = 40_000
    decay_start: int = 20_000  # linear decay of both learning rates to zero from here
    batch_size: int = 144  # 32 at 256 px
    lr_g: float = 2e-4
    lr_d: float = 1e-5
    beta1: float = 0.5
    g_updates: int = 5  # generator updates per iteration (the discriminators update once)
    lambda_cycle: float = 10.0
    lambda_l1: float = 0.1  # L1 between input and refined image (the CIFAR setting)
    pool_size: int = 50
    target_label: Range = (0.7, 1.2)
    source_label: Range = (0.0, 0.3)
    label_keep: float = 0.9  # probability a discriminator target is kept (see the module doc)
    pretrain_g: int = 1000  # iterations of L1 to the input before the stage: start from the identity
    pretrain_d: int = 500
    seed: int = 0
    networks: GanNetworks = field(default_factory=GanNetworks)
    # which generators a stage hands on: "last" (the appendix: the end of the schedule) or "best" (those with
    # the lowest KID to the stage's target among the gap measurements: a stage that drifts after its best
    # point, as stage 2 does at quick scale, is cut back to it; needs the gap meter while training)
    keep: str = "last"

    def lr_factor(self, iteration: int) -> float:
        if iteration < self.decay_start:
            return 1.0
        return max(0.0, 1.0 - (iteration - self.decay_start) / max(1, self.iterations - self.decay_start))


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


class ImagePool:
    """The last `size` generated images; each query returns, image by image, either the new one or (with
    probability 1/2, once full) a stored one, which the new one replaces. Keeps the discriminator from
    chasing the generator's latest output. Draws from the caller's generator: deterministic, resumable."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=gen) < 0.5:
                k = int(torch.randint(len(self.images), (), generator=gen))
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images) if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict) -> None:
        self.images = [x.clone() for x in state["images"]]


@dataclass
class StageState:
    """Everything one CycleGAN stage carries from one iteration to the next."""

    g_sr: nn.Module
    g_rs: nn.Module
    d_r: nn.Module
    d_s: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    pool_r: ImagePool  # refined synthetic images (fakes for D_r)
    pool_s: ImagePool  # refined real images (fakes for D_s)
    iteration: int = 0
    # torch.compile'd views of the four networks (same parameters) for the training steps; sampling and
    # measuring call the plain modules, so they neither trigger recompiles nor wait for one
    compiled: dict[str, nn.Module] = field(default_factory=dict)

    def train_nets(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """(G_sr, G_rs, D_r, D_s) as the training steps call them: compiled where compiled."""
        return tuple(self.compiled.get(k, getattr(self, k)) for k in ("g_sr", "g_rs", "d_r", "d_s"))


def new_stage(cfg: CycleGanConfig, image_size: int, device: torch.device | str = "cpu",
              compile: bool = False) -> StageState:
    """Fresh networks (seeded by cfg.seed) and optimisers. Networks live in channels_last memory format and
    the Adams are fused: measured by benchmarks/gan_speed.py, as is `compile` (torch.compile the training
    steps' networks: about a minute of compiling per stage on a CPU, then faster steps)."""
    torch.manual_seed(cfg.seed)
    nets = [build_generator(cfg.networks), build_generator(cfg.networks),
            build_discriminator(cfg.networks, image_size), build_discriminator(cfg.networks, image_size)]
    g_sr, g_rs, d_r, d_s = (n.to(device, memory_format=torch.channels_last) for n in nets)
    adam = dict(betas=(cfg.beta1, 0.999), fused=True)
    opt_g = torch.optim.Adam(list(g_sr.parameters()) + list(g_rs.parameters()), lr=cfg.lr_g, **adam)
    opt_d = torch.optim.Adam(list(d_r.parameters()) + list(d_s.parameters()), lr=cfg.lr_d, **adam)
    st = StageState(g_sr, g_rs, d_r, d_s, opt_g, opt_d, ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))
    if compile:
        st.compiled = {k: torch.compile(getattr(st, k)) for k in ("g_sr", "g_rs", "d_r", "d_s")}
    return st


def aligned_real(syn_labels: torch.Tensor, real_labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Indices into the real set, one per synthetic image, each of the same class (drawn at random)."""
    out = torch.empty(len(syn_labels), dtype=torch.int64)
    for c in syn_labels.unique().tolist():
        pool = torch.nonzero(real_labels == c).flatten()
        if len(pool) == 0:
            raise ValueError(f"class {c} has synthetic images but no real ones: batches cannot be class-aligned")
        where = torch.nonzero(syn_labels == c).flatten()
        out[where] = pool[torch.randint(len(pool), (len(where),), generator=gen)]
    return out


def d_targets(shape: torch.Size, real: bool, cfg: CycleGanConfig, gen: torch.Generator) -> torch.Tensor:
    """Noisy least-squares targets for a discriminator's patch scores: smoothed, and swapped at random."""
    u = torch.rand(shape, generator=gen)
    lo_t, hi_t = cfg.target_label
    lo_s, hi_s = cfg.source_label
    as_target = torch.full(shape, real)
    flip = torch.rand(shape, generator=gen) >= cfg.label_keep
    as_target = as_target ^ flip
    return torch.where(as_target, lo_t + (hi_t - lo_t) * u, lo_s + (hi_s - lo_s) * u)


def generator_loss(st: StageState, s: torch.Tensor, r: torch.Tensor, cfg: CycleGanConfig) -> tuple[torch.Tensor, dict]:
    """Adversarial (least squares, target 1) + lambda_cycle x cycle + lambda_l1 x L1(refined, input)."""
    g_sr, g_rs, d_r, d_s = st.train_nets()
    fake_r, fake_s = g_sr(s), g_rs(r)
    pr, ps = d_r(fake_r), d_s(fake_s)
    adv = F.mse_loss(pr, torch.ones_like(pr)) + F.mse_loss(ps, torch.ones_like(ps))
    cycle = F.l1_loss(g_rs(fake_r), s) + F.l1_loss(g_sr(fake_s), r)
    l1 = F.l1_loss(fake_r, s) + F.l1_loss(fake_s, r)
    total = adv + cfg.lambda_cycle * cycle + cfg.lambda_l1 * l1
    return total, {"g_adv": adv.detach(), "cycle": cycle.detach(), "l1": l1.detach(), "fake_r": fake_r.detach(),
                   "fake_s": fake_s.detach()}


def discriminator_loss(st: StageState, s: torch.Tensor, r: torch.Tensor, fake_r: torch.Tensor,
                       fake_s: torch.Tensor, cfg: CycleGanConfig, gen: torch.Generator) -> torch.Tensor:
    """Least squares on real images and pooled fakes, with noisy targets; each discriminator's loss halved."""
    fake_r, fake_s = st.pool_r.query(fake_r, gen), st.pool_s.query(fake_s, gen)
    loss = torch.zeros((), device=s.device)
    _, _, d_r, d_s = st.train_nets()
    for d, real, fake in ((d_r, r, fake_r), (d_s, s, fake_s)):
        p_real, p_fake = d(real), d(fake)
        t_real = d_targets(p_real.shape, True, cfg, gen).to(p_real.device)
        t_fake = d_targets(p_fake.shape, False, cfg, gen).to(p_fake.device)
        loss = loss + 0.5 * (F.mse_loss(p_real, t_real) + F.mse_loss(p_fake, t_fake))
    return loss


def _set_lr(st: StageState, cfg: CycleGanConfig) -> None:
    f = cfg.lr_factor(st.iteration)
    for g in st.opt_g.param_groups:
        g["lr"] = cfg.lr_g * f
    for g in st.opt_d.param_groups:
        g["lr"] = cfg.lr_d * f


def train_step(st: StageState, s: torch.Tensor, r: torch.Tensor, cfg: CycleGanConfig,
               gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One iteration: G_UPDATES generator updates, then one discriminator update. s, r in [-1, 1]."""
    s, r = _channels_last(s, r)
    _set_lr(st, cfg)
    for p in (*st.d_r.parameters(), *st.d_s.parameters()):
        p.requires_grad_(False)
    for _ in range(cfg.g_updates):
        loss_g, parts = generator_loss(st, s, r, cfg)
        st.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        st.opt_g.step()
    for p in (*st.d_r.parameters(), *st.d_s.parameters()):
        p.requires_grad_(True)
    loss_d = discriminator_loss(st, s, r, parts["fake_r"], parts["fake_s"], cfg, gen)
    st.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    st.opt_d.step()
    st.iteration += 1
    return {"g_total": loss_g.detach(), "g_adv": parts["g_adv"], "cycle": parts["cycle"], "l1": parts["l1"],
            "d": loss_d.detach()}


def _channels_last(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(x.contiguous(memory_format=torch.channels_last) for x in xs)


def pretrain_generators_step(st: StageState, s: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """One step of L1(G(x), x) for both generators: they start the stage as the identity."""
    s, r = _channels_last(s, r)
    g_sr, g_rs, _, _ = st.train_nets()
    loss = F.l1_loss(g_sr(s), s) + F.l1_loss(g_rs(r), r)
    st.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    st.opt_g.step()
    return loss.detach()


def pretrain_discriminators_step(st: StageState, s: torch.Tensor, r: torch.Tensor, cfg: CycleGanConfig,
                                 gen: torch.Generator) -> torch.Tensor:
    """One step of the adversarial loss for both discriminators against the (pre-trained) generators."""
    s, r = _channels_last(s, r)
    with torch.no_grad():
        g_sr, g_rs, _, _ = st.train_nets()
        fake_r, fake_s = g_sr(s), g_rs(r)
    loss = discriminator_loss(st, s, r, fake_r, fake_s, cfg, gen)
    st.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    st.opt_d.step()
    return loss.detach()
