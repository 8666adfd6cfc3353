"""Training configuration: one dataclass, and the paper's presets.

ResNet-20 (paper): SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 500 epochs, lr / 10 at epochs
221 and 348 with synthetic data, at 89 and 139 with real data only. AlexNet (paper): Adam lr 1e-4,
batch 128, 250 epochs, constant for 50 epochs then linear decay to zero.

`scale="quick"` is the paper's schedule shrunk by QUICK_FRACTION: the same shape (milestones and decay
start at the same fractions of training) over 1/50 of the epochs. An epoch is one pass over the real
set at every ratio, as in the paper, so every configuration sees each real image equally often; the
price is that a 1:15 epoch holds 16 times the images of a real-only one. (A fixed budget of images per
run, tried first, starved the mixed runs of real data: at 1:7 each real image was seen 5 times against
39 for real only, and the comparison measured that rather than the synthetic images.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

QUICK_FRACTION = 1 / 50  # quick: 10 of ResNet-20's 500 epochs, 5 of AlexNet's 250


@dataclass(frozen=True)
class TrainConfig:
    model: str = "resnet20"  # resnet20 | alexnet
    ratio: str = "1:7"  # real:synthetic per minibatch; 1:0 is real only, 0:1 synthetic only
    batch_size: int = 128
    epochs: int = 500
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"  # step: lr x 0.1 at each milestone; linear: constant, then to 0 from decay_start
    milestones: tuple[int, ...] = (221, 348)
    decay_start: int = 50
    augment: bool = False  # random crop (4 px padding) + horizontal flip
    # a synthetic-only (0:1) epoch takes as many batches as an epoch at this ratio, so that synthetic-only
    # training gets the image budget of the mixed runs it is compared with; at the real set's own length
    # (15 batches of 128 for 2,000 real images) a quick-scale run cannot even fit its training images
    synthetic_budget: str = "1:15"
    image_size: int = 32
    seed: int = 0
    # DataLoader workers for the synthetic source; None: loader_workers() picks by device (2 on a CPU, more on
    # a GPU, since one rendering process cannot feed one)
    workers: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bfloat16 autocast on GPU
    compile: bool = False  # torch.compile the model (pays off on GPU for long runs)
    # MrGAN runs (as "RUN" or "RUN stage K") the synthetic batches pass through on the fly, and that moved
    # the real images into the refined images' domain (Refiner.real_domain); recorded so a resume matches
    refiner: str | None = None
    refine_real: str | None = None
    # start from another run's weights (its best.pt, or a checkpoint file): pre-training on synthetic images,
    # then fine-tuning on real ones; the optimiser and schedule start afresh
    init: str | None = None
    extra: dict = field(default_factory=dict)  # free-form notes kept in summary.json

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def lr_factor(self, epoch: int) -> float:
        """Learning-rate multiplier for `epoch` (0-based)."""
        if self.schedule == "step":
            return 0.1 ** sum(epoch >= m for m in self.milestones)
        if self.schedule == "linear":
            if epoch < self.decay_start:
                return 1.0
            return max(0.0, 1.0 - (epoch - self.decay_start) / max(1, self.epochs - self.decay_start))
        raise ValueError(f"unknown schedule {self.schedule!r}: step or linear")


def epoch_batches(cfg: TrainConfig, real_images: int) -> int:
    """Batches per epoch: one pass over the real set at cfg.ratio; synthetic only, as many as at
    cfg.synthetic_budget."""
    from .mixing import Ratio, batches_per_epoch

    ratio = Ratio.parse(cfg.ratio)
    if ratio.real == 0:
        ratio = Ratio.parse(cfg.synthetic_budget)
        if ratio.real == 0:
            raise ValueError(f"synthetic_budget {cfg.synthetic_budget}: needs a real part (such as 1:15)")
    return batches_per_epoch(real_images, ratio, cfg.batch_size)


def images_per_epoch(real_images: int, ratio: str, batch_size: int, synthetic_budget: str = "1:15") -> int:
    cfg = TrainConfig(ratio=ratio, batch_size=batch_size, synthetic_budget=synthetic_budget)
    return epoch_batches(cfg, real_images) * batch_size


def preset(model: str = "resnet20", scale: str = "paper", real_only: bool = False, epochs_factor: int = 1,
           **overrides) -> TrainConfig:
    """The paper's settings for `model` at `scale`; keyword overrides (None = keep) win, and an explicit
    `epochs` keeps the milestones in proportion. `epochs_factor` multiplies the epochs (the scale's or the
    explicit ones), milestones in proportion: a baseline given a longer schedule than its table's."""
    if model == "resnet20":
        cfg = TrainConfig(model="resnet20", epochs=500, milestones=(89, 139) if real_only else (221, 348))
    elif model == "alexnet":
        cfg = TrainConfig(model="alexnet", optimizer="adam", lr=1e-4, weight_decay=0.0, momentum=0.0, epochs=250,
                          schedule="linear", decay_start=50, milestones=(), image_size=224)
    else:
        raise ValueError(f"unknown model {model!r}: resnet20 or alexnet")
    if real_only:
        cfg = replace(cfg, ratio="1:0")
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None and k != "epochs"})
    if scale not in ("paper", "quick"):
        raise ValueError(f"unknown scale {scale!r}: paper or quick")
    if overrides.get("epochs") is not None:  # from the paper's schedule, not a rounded quick one
        return rescale(cfg, overrides["epochs"] * epochs_factor)
    if scale == "quick":
        return rescale(cfg, max(2, round(cfg.epochs * QUICK_FRACTION)) * epochs_factor)
    return cfg if epochs_factor == 1 else rescale(cfg, cfg.epochs * epochs_factor)


def rescale(cfg: TrainConfig, epochs: int) -> TrainConfig:
    """`cfg` over `epochs` epochs, its milestones and decay start at the same fractions of training."""
    f = epochs / cfg.epochs
    return replace(cfg, epochs=epochs, milestones=tuple(max(1, round(m * f)) for m in cfg.milestones),
                   decay_start=max(1, round(cfg.decay_start * f)))
