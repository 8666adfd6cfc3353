"""MrGAN: CycleGANs trained one after another, each on the previous stage's outputs.

Stage 1 maps S (synthetic) <-> R (real). Stage k >= 2 maps a synthetic side X_k to a real side Y_k chosen
by the mapping (the paper's three):

    rr-rs   X_k = refined synthetic  G_{k-1}(X_{k-1}) ,  Y_k = refined real  F_{k-1}(Y_{k-1})
    r-rs    X_k = refined synthetic  G_{k-1}(X_{k-1}) ,  Y_k = Y_{k-1}
    rr-s    X_k = X_{k-1}                            ,  Y_k = refined real  F_{k-1}(Y_{k-1})

(G: a stage's synthetic -> real generator, F: its real -> synthetic one; X_1 = S, Y_1 = R.) With rr-* the
two domains meet in the middle: stage-K refined synthetic images aim at Y_K, which is the real images moved
part of the way toward the renders, so a classifier trained on them is tested on real images mapped into
Y_K as well (`Refiner.real_domain`; the paper's synthetic-only MrGAN row).

A run folder holds RUN/mrgan.json (the settings) and RUN/stage-<k>/ per stage: checkpoint.pt (everything,
to resume), generators.pt (what refining needs), metrics.csv, TensorBoard events, samples-<iter>.png.
Training a stage is a pure function of the seed and the data: the batch of step t and every random draw in
it come from (seed, stage, t), so a killed stage resumes to the same weights as one never stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cyclegan import (
    CycleGanConfig,
    ImagePool,
    StageState,
    aligned_real,
    new_stage,
    pretrain_discriminators_step,
    pretrain_generators_step,
    to_signed,
    to_uint8,
    train_step,
)
from .gan_networks import GanNetworks, build_generator

MAPPINGS = {"rr-rs": ("rs", "rr"), "r-rs": ("rs", "r"), "rr-s": ("s", "rr")}  # stage >= 2: (X side, Y side)
RUN_FILE = "mrgan.json"
GENERATORS = "generators.pt"
CHECKPOINT = "checkpoint.pt"
BEST = "best-generators.pt"  # the generators at the lowest KID to the stage's target so far (keep = "best")
KEEP = ("last", "best")
KIND = "mixreal-mrgan-stage"
REFINE_CHUNK = 256  # images per generator call when refining: bounds memory, not results


@dataclass(frozen=True)
class MrGanConfig:
    stages: int = 2
    mapping: str = "rr-rs"
    scale: str = "paper"
    image_size: int = 32
    cyclegan: CycleGanConfig = field(default_factory=CycleGanConfig)
    checkpoint_every: int = 100  # steps (pre-training steps count)
    sample_every: int = 500
    log_every: int = 10
    gap_every: int = 500  # 0: no KID while training
    gap_images: int = 500
    device: str = "auto"
    compile: bool = False  # torch.compile the training steps (needs a C++ compiler on CPU; see new_stage)

    def __post_init__(self):
        if self.mapping not in MAPPINGS:
            raise ValueError(f"unknown mapping {self.mapping!r}: one of {', '.join(MAPPINGS)}")
        if self.stages < 1:
            raise ValueError(f"stages={self.stages}: at least 1")
        if self.cyclegan.keep not in KEEP:
            raise ValueError(f"keep = {self.cyclegan.keep!r}: one of {', '.join(KEEP)}")
        if self.cyclegan.keep == "best" and not self.gap_every:
            raise ValueError("keep = best picks generators by their measured KID: it needs gap_every > 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MrGanConfig:
        return cls(**{**d, "cyclegan": _cyclegan(d["cyclegan"])})


def _cyclegan(d: dict) -> CycleGanConfig:
    """A CycleGanConfig from its dict (JSON lists back to tuples); absent settings take their defaults."""
    g = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "networks"}
    return CycleGanConfig(**g, networks=_networks(d.get("networks", {})))


def _tuple(v):
    return None if v is None else tuple(v)


def _networks(d: dict) -> GanNetworks:
    return GanNetworks(**{**d, "discriminator": _tuple(d.get("discriminator"))})


# What a GAN recipe may override (`mrgan_preset`'s keywords, and the keys of a --gan-config file), with types
_GAN_KEYS = {"iterations": int, "batch_size": int, "g_updates": int, "pretrain_g": int, "pretrain_d": int,
             "lr_g": float, "lr_d": float, "keep": str}
_NET_KEYS = {"residual_blocks": int, "identity_skip": bool, "norm_scale_mean": float}
_MAY_BE_ZERO = {"pretrain_g", "pretrain_d", "norm_scale_mean"}


def load_gan_recipe(path: Path) -> dict:
    """A TOML file of `mrgan_preset` overrides, e.g. `identity_skip = true` and `lr_d = 2e-4`. Every key is
    checked; an unknown one or a wrong type is a ValueError of one line naming the file and the key."""
    import difflib

    from renderer.config_file import read_toml

    path = Path(path)
    data = read_toml(path, "GAN recipe file")
    types = {**_GAN_KEYS, **_NET_KEYS}
    out = {}
    for key, value in data.items():
        if key not in types:
            near = difflib.get_close_matches(key, list(types), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(sorted(types))})"
            raise ValueError(f"{path}: unknown key {key!r}{hint}")
        want = types[key]
        if want is str:
            if value not in KEEP:
                raise ValueError(f"{path}: {key} = {value!r}: expected one of {', '.join(map(repr, KEEP))}")
            ok = True
        elif want is bool:
            ok = isinstance(value, bool)
        else:  # a count or a rate: positive, except the two that may be switched off with 0
            number = isinstance(value, want if want is int else (int, float)) and not isinstance(value, bool)
            ok = number and (value >= 0 if key in _MAY_BE_ZERO else value > 0)
        if not ok:
            kind = "true or false" if want is bool else f"a {'non-negative' if key in _MAY_BE_ZERO else 'positive'} " \
                f"{'integer' if want is int else 'number'}"
            raise ValueError(f"{path}: {key} = {value!r}: expected {kind}")
        out[key] = want(value)
    return out


def mrgan_preset(scale: str = "paper", image_size: int = 32, **overrides) -> MrGanConfig:
    """The appendix's settings (`paper`, as written, for a GPU), or `quick`: one stage in about 15 (AVX-512
    Xeon, estimated) to 35 (AVX2 EPYC, measured) minutes on 2 CPU cores.

    quick shortens the schedule: 3 residual blocks instead of 9, batch 32 instead of 144, one generator
    update per discriminator update instead of five, 2,000 iterations (decay from 1,000) instead of 40,000,
    300 discriminator pre-training steps instead of 500. And it trains with the recipe that worked at that
    length (docs/RESULTS.md, Table 3 at seeds 0 and 1), not the appendix's: generators that start as the
    identity (`identity_skip`, norm scales around 1, so no generator pre-training), discriminators at the
    generators' rate (lr_d 2e-4, not 1e-5: at 1e-5 they barely learn in 2,000 steps) and each stage handing
    on its generators at their lowest KID to the stage's target (keep "best"; "last" when the gap meter is
    off). `identity_skip=False` gives the appendix's networks back with 600 steps of generator pre-training
    (the identity is learnt slowly from the appendix's init: 200 steps of L1 took the error from 0.46 to
    0.24 on [-1, 1], measured). Losses, label noise, pool, lr_g and class alignment are the appendix's."""
    if scale == "paper":
        gan = CycleGanConfig(batch_size=144 if image_size <= 64 else 32)
    elif scale == "quick":
        gan = CycleGanConfig(iterations=2000, decay_start=1000, batch_size=32, g_updates=1, pretrain_g=0,
                             pretrain_d=300, lr_d=2e-4, keep="best",
                             networks=GanNetworks(residual_blocks=3, identity_skip=True, norm_scale_mean=1.0))
    else:
        raise ValueError(f"unknown scale {scale!r}: paper or quick")
    gan_keys = set(_GAN_KEYS) | {"seed"}
    g_over = {k: v for k, v in overrides.items() if k in gan_keys and v is not None}
    if "iterations" in g_over:  # keep the schedule's shape: decay over the second half
        g_over["decay_start"] = g_over["iterations"] * gan.decay_start // max(1, gan.iterations)
    net_keys = set(_NET_KEYS)
    net_over = {k: v for k, v in overrides.items() if k in net_keys and v is not None}
    skip = net_over.get("identity_skip")
    if skip and not gan.networks.identity_skip:
        # with the appendix's norm scales (~0) the features reaching the zero-started last layer are ~0 too and
        # the generators stay the identity (measured: L1 1e-4 after 200 iterations): use the reference init
        net_over.setdefault("norm_scale_mean", 1.0)
        g_over.setdefault("pretrain_g", 0)  # the generators are the identity already: nothing to pre-train
    elif skip is False and gan.networks.identity_skip:  # quick without the skip: the appendix's networks
        net_over.setdefault("norm_scale_mean", 0.0)
        g_over.setdefault("pretrain_g", 600)
    if net_over:
        g_over["networks"] = replace(gan.networks, **net_over)
    if overrides.get("gap_every") == 0 and "keep" not in g_over:
        g_over["keep"] = "last"  # "best" is chosen by the gap meter: without it, the end of the schedule
    gan = replace(gan, **g_over)
    rest = {k: v for k, v in overrides.items() if k not in gan_keys | net_keys and v is not None}
    every = {"checkpoint_every": 100, "sample_every": 500, "gap_every": 500} if scale == "quick" else \
        {"checkpoint_every": 500, "sample_every": 2000, "gap_every": 2000}
    every["compile"] = True  # a minute of compiling pays for itself within the first few hundred steps
    return MrGanConfig(scale=scale, image_size=image_size, cyclegan=gan, **{**every, **rest})


def stage_sides(mapping: str, k: int) -> tuple[str, str]:
    """What stage k's synthetic and real sides are made of (see the module doc)."""
    return ("s", "r") if k == 1 else MAPPINGS[mapping]


def input_chain(mapping: str, k: int, side: int) -> list[int]:
    """The stages whose generators (G on side 0, F on side 1) make stage k's input from the raw images: stage
    j is in it when stage j + 1 takes refined images on that side (rr-s's synthetic side: none)."""
    return [j for j in range(1, k) if stage_sides(mapping, j + 1)[side] in ("rs", "rr")]


# ----------------------------------------------------------------------------------------------------
# Refining with trained stages


class Refiner:
    """The generators of stages 1..K of a run: maps images (uint8 (N, 3, H, W)) between the domains."""

    def __init__(self, generators: list[tuple[nn.Module, nn.Module]], mapping: str, source: str = "",
                 device: torch.device | str = "cpu"):
        self.generators = generators  # per stage: (G: synthetic side -> real side, F: real -> synthetic)
        self.mapping, self.source, self.device = mapping, source, torch.device(device)
        for g, f in generators:
            g.eval()
            f.eval()

    @property
    def stages(self) -> int:
        return len(self.generators)

    @classmethod
    def load(cls, run: Path, stage: int | None = None, device: torch.device | str = "cpu") -> Refiner:
        run = Path(run)
        cfg = read_run(run)
        last = finished_stages(run)
        stage = last if stage is None else stage
        if last == 0:
            raise ValueError(f"{run}: no finished stage to refine with (train it with `mixreal train mrgan`)")
        if not 1 <= stage <= last:
            raise ValueError(f"{run}: stage {stage} asked for; stages 1-{last} are trained")
        gens = [load_generators(run / f"stage-{k}" / GENERATORS, device) for k in range(1, stage + 1)]
        return cls(gens, cfg.mapping, f"{run} stage {stage}", device)

    def _signed_chain(self, x: torch.Tensor, upto: int, side: int) -> torch.Tensor:
        """X_upto (side 0) or Y_upto (side 1) from X_1 / Y_1, in [-1, 1]."""
        for j in input_chain(self.mapping, upto, side):
            x = self.generators[j - 1][side](x)
        return x

    def _apply(self, images: torch.Tensor, fn) -> torch.Tensor:
        return map_images(fn, images, self.device)

    def s2r(self, images: torch.Tensor, stage: int | None = None) -> torch.Tensor:
        """Synthetic images refined through stage `stage` (default: the last) toward the real side."""
        k = stage or self.stages
        return self._apply(images, lambda x: self.generators[k - 1][0](self._signed_chain(x, k, 0)))

    def r2s(self, images: torch.Tensor, stage: int | None = None) -> torch.Tensor:
        """Real images mapped by stage `stage`'s real -> synthetic generator (its inputs chained as trained)."""
        k = stage or self.stages
        return self._apply(images, lambda x: self.generators[k - 1][1](self._signed_chain(x, k, 1)))

    def real_domain(self, images: torch.Tensor) -> torch.Tensor:
        """Real images moved into Y_K, the domain the last stage's refined synthetic images aim at: what a
        classifier trained on them should be tested on. Unchanged (a copy) when Y_K is the real images."""
        if not self.moves_real():
            return images.clone()
        return self._apply(images, lambda x: self._signed_chain(x, self.stages, 1))

    def moves_real(self) -> bool:
        return bool(input_chain(self.mapping, self.stages, 1))


def map_images(fn, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images through fn (on [-1, 1] floats) in chunks, back to uint8 on the CPU."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), REFINE_CHUNK):
            out.append(to_uint8(fn(to_signed(images[i:i + REFINE_CHUNK].to(device)))).cpu())
    return torch.cat(out) if out else images.clone()


def load_generators(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, nn.Module]:
    from .loop import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a stage not trained to the end?)")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != KIND or not {"g_sr", "g_rs", "networks"} <= set(state):
        raise ValueError(f"{path}: not a mixreal MrGAN stage (foreign or damaged file)")
    nets = _networks(state["networks"])
    out = []
    for key in ("g_sr", "g_rs"):
        g = build_generator(nets)
        try:
            g.load_state_dict(state[key])
        except RuntimeError as exc:
            raise ValueError(f"{path}: {key} does not fit its generator ({str(exc).splitlines()[0]})") from None
        out.append(g.to(device))
    return out[0], out[1]


def read_run(run: Path) -> MrGanConfig:
    path = Path(run) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a MrGAN run (no {RUN_FILE}; train one with `mixreal train mrgan`)")
    try:
        return MrGanConfig.from_dict(json.loads(path.read_text())["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def finished_stages(run: Path) -> int:
    """How many stages, counted from 1 without a gap, have their generators written."""
    k = 0
    while (Path(run) / f"stage-{k + 1}" / GENERATORS).is_file():
        k += 1
    return k


# ----------------------------------------------------------------------------------------------------
# Synthetic batches as a pure function of the step


class SyntheticBatches:
    """Batch t of a synthetic source: a RenderStream (indices t*B .. t*B+B-1 after its start: the
    renderer's class-balanced order) or a dataset (a fresh permutation per pass, drawn from the seed)."""

    def __init__(self, source, seed: int):
        from torch.utils.data import IterableDataset

        self.source, self.seed = source, seed
        self.streaming = isinstance(source, IterableDataset)
        self._renderer = None
        self.class_names = list(source.class_names)

    def _render(self, indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        if self._renderer is None:
            self._renderer = self.source._renderer(0)
        specs = [self._renderer.spec_at(i) for i in indices]
        images = torch.from_numpy(self._renderer.render(specs)).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor([self.source.model_labels[s.model] for s in specs])
        keep = labels >= 0
        return images[keep], labels[keep]

    def batch(self, t: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.streaming:
            lo = self.source.start + t * size
            return self._render(range(lo, lo + size))
        n = len(self.source)
        idx = [self._position(t * size + j, n) for j in range(size)]
        xs, ys = zip(*(self.source[i] for i in idx), strict=True)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def _position(self, k: int, n: int) -> int:
        epoch, j = divmod(k, n)
        return int(np.random.default_rng([self.seed, epoch]).permutation(n)[j])

    def held_out(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n images for measuring: for a stream, indices far past any training step's."""
        if self.streaming:
            lo = self.source.start + 10**9
            return self._render(range(lo, lo + n))
        idx = np.linspace(0, len(self.source) - 1, min(n, len(self.source))).astype(int)
        xs, ys = zip(*(self.source[int(i)] for i in idx), strict=True)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None


# ----------------------------------------------------------------------------------------------------
# Training


def _step_generator(seed: int, stage: int, step: int) -> torch.Generator:
    words = np.random.SeedSequence([seed, stage, step]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def _stage_state_dict(st: StageState) -> dict:
    return {"g_sr": st.g_sr.state_dict(), "g_rs": st.g_rs.state_dict(), "d_r": st.d_r.state_dict(),
            "d_s": st.d_s.state_dict(), "opt_g": st.opt_g.state_dict(), "opt_d": st.opt_d.state_dict(),
            "pool_r": st.pool_r.state_dict(), "pool_s": st.pool_s.state_dict(), "iteration": st.iteration}


def _load_stage_state(st: StageState, state: dict) -> None:
    for key in ("g_sr", "g_rs", "d_r", "d_s", "opt_g", "opt_d", "pool_r", "pool_s"):
        getattr(st, key).load_state_dict(state[key])
    st.iteration = int(state["iteration"])


def _comparable(cfg: MrGanConfig, stage: int) -> dict:
    """What a stage's checkpoint must share with the settings that resume it. The mapping shapes stages 2+
    only, so stage 1 can be shared between runs of different mappings."""
    d = cfg.to_dict()
    keep = {"image_size": d["image_size"], "cyclegan": d["cyclegan"]}
    if stage > 1:
        keep["mapping"] = d["mapping"]
    return keep


def _same_settings(saved, cfg: MrGanConfig, stage: int) -> bool:
    """Whether a checkpoint's settings are `cfg`'s for this stage. A setting added after the checkpoint was
    written is absent from it and takes its default, which is what ran then: older runs still resume."""
    if not isinstance(saved, dict) or not isinstance(saved.get("cyclegan"), dict):
        return False
    try:
        filled = asdict(_cyclegan(saved["cyclegan"]))
    except TypeError:  # a setting this version does not know: written by a newer mixreal
        return False
    return {**saved, "cyclegan": filled} == _comparable(cfg, stage)


def train_mrgan(cfg: MrGanConfig, real, synthetic, out: Path, feature_net=None, progress: bool = True,
                log=print) -> dict:
    """Train (or resume) every stage of `cfg` into OUT; returns RUN/mrgan.json's content.

    real: a RealDataset (train split); synthetic: a RenderStream or a dataset with the same class names;
    feature_net: a gap.FeatureNet for logging the domain gap (KID) while training, or None."""
    from renderer.export import atomic_write_text

    from .loop import pick_device

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = list(real.class_names)
    if list(synthetic.class_names) != classes:
        raise ValueError(f"synthetic classes {synthetic.class_names} differ from the real ones {classes}")
    run_path = out / RUN_FILE
    info = {"config": cfg.to_dict(), "class_names": classes, "stages_done": 0}
    if run_path.is_file():
        old = json.loads(run_path.read_text())
        if old.get("class_names") != classes or old["config"]["mapping"] != cfg.mapping:
            raise ValueError(f"{out}: holds a MrGAN run with another mapping or classes; use another --out")
    if cfg.cyclegan.keep == "best" and feature_net is None:
        raise ValueError("keep = best picks generators by their measured KID: give the gap meter's feature network")
    atomic_write_text(run_path, json.dumps(info, indent=2) + "\n")
    device = pick_device(cfg.device)
    source = SyntheticBatches(synthetic, cfg.cyclegan.seed)
    try:
        for k in range(1, cfg.stages + 1):
            prev = Refiner([load_generators(out / f"stage-{j}" / GENERATORS, device) for j in range(1, k)],
                           cfg.mapping, device=device)
            stage_dir = out / f"stage-{k}"
            if (stage_dir / GENERATORS).is_file() and _stage_complete(stage_dir, cfg, k):
                log(f"stage {k}: done already")
            else:
                _train_stage(cfg, k, prev, real, source, stage_dir, device, feature_net, progress, log)
            info["stages_done"] = k
            atomic_write_text(run_path, json.dumps(info, indent=2) + "\n")
    finally:
        source.close()
    gap = gap_progress(out)
    if gap:  # what a user asks first of a finished run: did refinement move the renders toward the photos?
        info["gap"] = gap
        atomic_write_text(run_path, json.dumps(info, indent=2) + "\n")
        for line in format_gap_progress(gap):
            log(line)
    return info


def gap_progress(out: Path) -> list[dict]:
    """Per trained stage of RUN, the domain gap as training measured it (KID in the gap meter's features):
    raw renders to real, refined synthetic to real and to the stage's real side at the first measurement (when
    pre-training ended) and at the generators the stage handed on (the last measurement, or the best with
    keep = "best"; "trained_to" is the last step), and the share of the raw gap to real images that refinement
    closed. Stages trained with --gap-every 0 are left out."""
    from .loop import load_checkpoint
    from .report import read_metrics

    report, k = [], 1
    while (Path(out) / f"stage-{k}").is_dir():
        stage_dir = Path(out) / f"stage-{k}"
        rows = [r for r in read_metrics(stage_dir / "metrics.csv") if "kid_to_real" in r]
        k += 1
        if not rows:
            continue
        first, last = rows[0], rows[-1]
        if (stage_dir / GENERATORS).is_file():
            kept_step = load_checkpoint(stage_dir / GENERATORS).get("step")
            last = next((r for r in rows if r["step"] == kept_step), last)
        report.append({"stage": k - 1, "step": last["step"], "trained_to": rows[-1]["step"], "kid_raw": last["kid_raw"],
                       "kid_to_real_first": first["kid_to_real"], "kid_to_real": last["kid_to_real"],
                       "kid_to_target_first": first["kid_to_target"], "kid_to_target": last["kid_to_target"],
                       "closed": 1.0 - last["kid_to_real"] / last["kid_raw"] if last["kid_raw"] > 0 else None})
    return report


def format_gap_progress(report: list[dict]) -> list[str]:
    """One line per stage of gap_progress's report, in KID x 100 (lower: closer)."""
    lines = []
    for r in report:
        closed = "" if r["closed"] is None else f" ({100 * r['closed']:.0f} % of the raw gap closed)"
        kept = "" if r.get("trained_to", r["step"]) == r["step"] else f" (kept; trained to {r['trained_to']})"
        target = ("" if r["stage"] == 1 else
                  f"; to its real side {100 * r['kid_to_target_first']:.2f} -> {100 * r['kid_to_target']:.2f}")
        lines.append(f"stage {r['stage']}: KID x 100 to real: raw renders {100 * r['kid_raw']:.2f}, refined "
                     f"{100 * r['kid_to_real_first']:.2f} after pre-training -> {100 * r['kid_to_real']:.2f} at step "
                     f"{r['step']}{kept}{closed}{target}")
    return lines


def _stage_complete(stage_dir: Path, cfg: MrGanConfig, k: int) -> bool:
    from .loop import load_checkpoint

    state = load_checkpoint(stage_dir / GENERATORS)
    return _same_settings(state.get("config"), cfg, k)


def can_compile(device: torch.device, log=print) -> bool:
    """torch.compile builds C++ kernels on a CPU: without a compiler, train uncompiled (and say so)."""
    import os
    import shutil

    if device.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is None:
        log("note: no C++ compiler (g++) found: training without torch.compile")
        return False
    return True


def _total_steps(g: CycleGanConfig) -> int:
    return g.pretrain_g + g.pretrain_d + g.iterations


def _train_stage(cfg: MrGanConfig, k: int, prev: Refiner, real, source: SyntheticBatches, out: Path,
                 device: torch.device, feature_net, progress: bool, log) -> None:
    from .loop import RunMismatch, load_checkpoint, save_checkpoint
    from .report import read_metrics, tensorboard_writer, write_metrics

    g = cfg.cyclegan
    out.mkdir(parents=True, exist_ok=True)
    st = new_stage(g, cfg.image_size, device, compile=cfg.compile and can_compile(device, log))
    ckpt = out / CHECKPOINT
    step = 0
    best: dict | None = None  # {"step", "kid_to_target"} of BEST's generators (keep = "best")
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        if not isinstance(state, dict) or state.get("kind") != KIND or "stage" not in state:
            raise ValueError(f"{ckpt}: not a mixreal MrGAN stage checkpoint (foreign or damaged file)")
        if not _same_settings(state["config"], cfg, k):
            raise RunMismatch(f"{out}: holds a stage trained with other settings; use another --out")
        _load_stage_state(st, state["stage"])
        step = int(state["step"])
        best = state.get("best")
        log(f"stage {k}: resuming after step {step}")
    rows = [r for r in read_metrics(out / "metrics.csv") if r["step"] <= step]
    total = _total_steps(g)
    real_images, real_labels = real.images, real.labels
    fixed = _fixed_examples(source, real_images, real_labels, len(real.class_names))
    gap_set = source.held_out(cfg.gap_images) if cfg.gap_every and feature_net is not None else None
    gap_ref = None  # computed at the first measurement, then reused
    writer = tensorboard_writer(out / "tensorboard")
    sums: dict[str, torch.Tensor] = {}
    count, t0 = 0, time.perf_counter()
    steps: Iterator[int] = iter(range(step, total))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"stage {k}/{cfg.stages}", unit="step", dynamic_ncols=True)
    for step in steps:
        gen = _step_generator(g.seed, k, step)
        s_u8, s_lab = source.batch(step, g.batch_size)
        r_u8 = real_images[aligned_real(s_lab, real_labels, gen)]
        with torch.no_grad():
            s = prev._signed_chain(to_signed(s_u8.to(device)), k, 0)
            r = prev._signed_chain(to_signed(r_u8.to(device)), k, 1)
        if step < g.pretrain_g:
            losses = {"pretrain_g_l1": pretrain_generators_step(st, s, r)}
        elif step < g.pretrain_g + g.pretrain_d:
            losses = {"pretrain_d": pretrain_discriminators_step(st, s, r, g, gen)}
        else:
            losses = train_step(st, s, r, g, gen)
        for name, v in losses.items():  # summed on the device: no host sync but every log_every steps
            sums[name] = sums.get(name, 0) + v
        count += 1
        done = step + 1
        if bar is not None:
            bar.update(1)
        if done % cfg.log_every == 0 or done == total:
            row = {"step": done, "iteration": st.iteration, "lr_factor": g.lr_factor(st.iteration),
                   "seconds_per_step": (time.perf_counter() - t0) / count,
                   **{name: float(v) / count for name, v in sums.items()}}
            rows.append(row)
            if writer is not None:
                for name, v in row.items():
                    if name != "step":
                        writer.add_scalar(f"stage{k}/{name}", v, done)
            if bar is not None:
                bar.set_postfix({n: f"{row[n]:.3f}" for n in ("g_adv", "cycle", "d", "pretrain_g_l1", "pretrain_d")
                                 if n in row})
            sums, count, t0 = {}, 0, time.perf_counter()
        main_done = done - g.pretrain_g - g.pretrain_d  # main iterations finished (0: pre-training just ended)
        if gap_set is not None and main_done >= 0 and (main_done % cfg.gap_every == 0 or done == total):
            if gap_ref is None:
                gap_ref = _gap_reference(k, prev, gap_set, real_images, feature_net, device)
            row = _gap_row(k, done, prev, st, gap_set, gap_ref, feature_net, device)
            rows.append(row)
            log(f"stage {k}, step {done}: KID x 100 refined synthetic vs real {100 * row['kid_to_real']:.2f}"
                f" (raw {100 * row['kid_raw']:.2f})")
            if writer is not None:
                writer.add_scalar(f"stage{k}/kid_to_real", row["kid_to_real"], done)
            if g.keep == "best" and (best is None or row["kid_to_target"] < best["kid_to_target"]):
                # written before the checkpoint that records it: a kill between the two re-measures the same step
                save_checkpoint(out / BEST, _generators_state(st, g, cfg, k, real.class_names, done))
                best = {"step": done, "kid_to_target": row["kid_to_target"]}
        if cfg.sample_every and (done % cfg.sample_every == 0 or done == total):
            sample_sheet(out / f"samples-{done:06d}.png", prev, st, fixed, real.class_names, k)
        if done % cfg.checkpoint_every == 0 or done == total:
            save_checkpoint(ckpt, {"kind": KIND, "stage": _stage_state_dict(st), "step": done,
                                   "config": _comparable(cfg, k), "best": best})
            write_metrics(out / "metrics.csv", rows)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    write_metrics(out / "metrics.csv", rows)
    title = f"stage {k} ({'S <-> R' if k == 1 else cfg.mapping})"
    if g.keep == "best" and best is not None and best["step"] != total:
        kept = load_checkpoint(out / BEST)
        st.g_sr.load_state_dict(kept["g_sr"])
        st.g_rs.load_state_dict(kept["g_rs"])
        log(f"stage {k}: keeping the generators of step {best['step']} (KID x 100 to the stage's target "
            f"{100 * best['kid_to_target']:.2f}, the lowest measured)")
        if cfg.sample_every:
            sample_sheet(out / f"samples-kept-{best['step']:06d}.png", prev, st, fixed, real.class_names, k)
        title += f", kept: step {best['step']}"
    save_checkpoint(out / GENERATORS, _generators_state(st, g, cfg, k, real.class_names,
                                                        best["step"] if g.keep == "best" and best else total))
    plot_losses(out / "losses.png", rows, title)


def _generators_state(st: StageState, g: CycleGanConfig, cfg: MrGanConfig, k: int, class_names, step: int) -> dict:
    """What a stage hands on (GENERATORS, BEST): its two generators and what they were trained with."""
    return {"kind": KIND, "g_sr": st.g_sr.state_dict(), "g_rs": st.g_rs.state_dict(),
            "networks": asdict(g.networks), "config": _comparable(cfg, k), "stage": k, "mapping": cfg.mapping,
            "class_names": list(class_names), "step": step}


def _gap_reference(k: int, prev: Refiner, gap_set, real_images, net, device) -> dict:
    """What every KID measurement of stage k compares against, fixed for the stage (the earlier stages are
    frozen): features of the real images and of the stage's real side, and the raw synthetic images' KID."""
    from .gap import kid_fid

    s_u8, _ = gap_set
    target = map_images(lambda x: prev._signed_chain(x, k, 1), real_images, device)
    f_real, _ = net.features_and_logits(real_images)
    f_target, _ = net.features_and_logits(target)
    f_raw, _ = net.features_and_logits(s_u8)
    return {"real": f_real, "target": f_target, "kid_raw": kid_fid(f_real, f_raw, subsets=20)[0]}


def _gap_row(k: int, step: int, prev: Refiner, st: StageState, gap_set, ref: dict, net, device) -> dict:
    """KID between the stage's refined synthetic images and (a) the real images, (b) the stage's real side."""
    from .gap import kid_fid

    s_u8, _ = gap_set
    st.g_sr.eval()
    refined = map_images(lambda x: st.g_sr(prev._signed_chain(x, k, 0)), s_u8, device)
    st.g_sr.train()
    f_ref, _ = net.features_and_logits(refined)
    return {"step": step, "kid_to_real": kid_fid(ref["real"], f_ref, subsets=20)[0],
            "kid_to_target": kid_fid(ref["target"], f_ref, subsets=20)[0], "kid_raw": ref["kid_raw"]}


def _fixed_examples(source: SyntheticBatches, real_images, real_labels, n_classes: int, per_class: int = 2):
    """A few synthetic and real images per class, the same at every sample sheet."""
    s, sl = source.held_out(max(8 * n_classes * per_class, 64))
    pick_s = torch.cat([torch.nonzero(sl == c).flatten()[:per_class] for c in range(n_classes)])
    pick_r = torch.cat([torch.nonzero(real_labels == c).flatten()[:per_class] for c in range(n_classes)])
    return s[pick_s], sl[pick_s], real_images[pick_r], real_labels[pick_r]


def sample_sheet(path: Path, prev: Refiner, st: StageState, fixed, class_names: list[str], k: int) -> None:
    """One row per example: synthetic S | refined by stage 1 | ... | by stage k | cycled back through stage k |
    what stages 1..k changed (|S - stage k|, amplified); for real images: real R | stage k's real side Y_k |
    mapped to synthetic by F_k | cycled back | what F_k changed (|Y_k - F_k(Y_k)|, amplified). Refinement at
    32 px is often too subtle to see side by side, the amplified difference shows where it acts."""
    from .report import samples_sheet

    s, sl, r, rl = fixed
    dev = next(st.g_sr.parameters()).device
    st.g_sr.eval()
    st.g_rs.eval()
    with torch.no_grad():
        x = to_signed(s.to(dev))
        cols = [x]
        for j in range(1, k):  # stage-j refined synthetic, chained as the stages were trained
            cols.append(prev.generators[j - 1][0](prev._signed_chain(x, j, 0)))
        xk = prev._signed_chain(x, k, 0)
        fake_r = st.g_sr(xk)
        cols += [fake_r, st.g_rs(fake_r)]
        y = to_signed(r.to(dev))
        yk = prev._signed_chain(y, k, 1)
        fake_s = st.g_rs(yk)
        rcols = [y, yk, fake_s, st.g_sr(fake_s)]
    st.g_sr.train()
    st.g_rs.train()
    cols.append(_amplified_difference(x, fake_r))
    rcols.append(_amplified_difference(yk, fake_s))
    rows = []
    s_label, r_label = sheet_labels(prev.mapping, k)
    for i in range(len(s)):
        rows.append((f"{class_names[int(sl[i])]}: {s_label}", [to_uint8(c[i]).cpu().numpy() for c in cols]))
    for i in range(len(r)):
        rows.append((f"{class_names[int(rl[i])]}: {r_label}", [to_uint8(c[i]).cpu().numpy() for c in rcols]))
    samples_sheet(path, rows, zoom=3)


def sheet_labels(mapping: str, k: int) -> tuple[str, str]:
    """The column legend of a stage-k sample sheet's synthetic and real rows. "S > 1 > 2" when stage k refines
    what the stages before it refined; where the mapping feeds stage k an earlier domain (rr-s: raw
    synthetic), the earlier stages' columns stand alone and stage k's column names its own input chain."""
    chain = input_chain(mapping, k, 0)
    if chain == list(range(1, k)):
        s_label = "S" + "".join(f" > {j}" for j in range(1, k + 1))
    else:
        s_label = " | ".join(["S", *map(str, range(1, k)), "S" + "".join(f" > {j}" for j in [*chain, k])])
    return f"{s_label} | cycle | x{DIFF_GAIN} diff", f"R | Y{k} | F{k} | cycle | x{DIFF_GAIN} diff"


DIFF_GAIN = 4


def _amplified_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| x DIFF_GAIN per channel, as a signed image (black: unchanged), for to_uint8."""
    return (a - b).abs().mul(DIFF_GAIN).clamp(0, 2).sub(1)


def plot_losses(path: Path, rows: list[dict], title: str) -> None:
    """Loss curves of one stage, and the KID to real images where it was measured."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from renderer.export import atomic_write_bytes

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name in ("pretrain_g_l1", "pretrain_d", "g_adv", "cycle", "l1", "d"):
        pts = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        if pts:
            a.plot(*zip(*pts, strict=True), label=name)
    a.set_xlabel("step")
    a.set_yscale("log")
    a.legend(fontsize=7)
    a.set_title(title)
    for name in ("kid_to_real", "kid_to_target", "kid_raw"):
        pts = [(r["step"], 100 * r[name]) for r in rows if r.get(name) is not None]
        if pts:
            b.plot(*zip(*pts, strict=True), marker="o", label=name)
    b.set_xlabel("step")
    b.set_ylabel("KID x 100")
    if b.lines:
        b.legend(fontsize=7)
    else:
        b.text(0.5, 0.5, "no KID measured (--gap-every 0)", ha="center", transform=b.transAxes)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["MAPPINGS", "ImagePool", "MrGanConfig", "Refiner", "SyntheticBatches", "finished_stages",
           "format_gap_progress", "gap_progress", "load_generators", "mrgan_preset", "read_run", "stage_sides",
           "train_mrgan"]
