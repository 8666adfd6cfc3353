"""Training configuration: one dataclass, and the paper's presets.

ResNet-20 (paper): SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 500 epochs, lr / 10 at epochs
221 and 348 with synthetic data, at 89 and 139 with real data only. AlexNet (paper): Adam lr 1e-4,
batch 128, 250 epochs, constant for 50 epochs then linear decay to zero. `scale="quick"` keeps the
shape of each schedule (milestones at the same fractions of training) on a CPU budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

QUICK_FRACTION = 1 / 25  # quick runs: 20 of ResNet-20's 500 epochs, 10 of AlexNet's 250


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
    image_size: int = 32
    seed: int = 0
    workers: int = 2  # DataLoader workers for the synthetic source
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bfloat16 autocast on GPU
    compile: bool = False  # torch.compile the model (pays off on GPU for long runs)
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


def preset(model: str = "resnet20", scale: str = "paper", real_only: bool = False, **overrides) -> TrainConfig:
    if model == "resnet20":
        cfg = TrainConfig(model="resnet20", epochs=500, milestones=(89, 139) if real_only else (221, 348))
    elif model == "alexnet":
        cfg = TrainConfig(model="alexnet", optimizer="adam", lr=1e-4, weight_decay=0.0, momentum=0.0, epochs=250,
                          schedule="linear", decay_start=50, milestones=(), image_size=224)
    else:
        raise ValueError(f"unknown model {model!r}: resnet20 or alexnet")
    if scale == "quick":
        f = QUICK_FRACTION
        cfg = replace(cfg, epochs=max(2, round(cfg.epochs * f)),
                      milestones=tuple(max(1, round(m * f)) for m in cfg.milestones),
                      decay_start=max(1, round(cfg.decay_start * f)))
    elif scale != "paper":
        raise ValueError(f"unknown scale {scale!r}: paper or quick")
    if real_only:
        cfg = replace(cfg, ratio="1:0")
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
