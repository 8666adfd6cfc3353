"""The domain-gap meter: how far a synthetic set is from the real one, as a real-photo classifier sees it.

Features are the penultimate activations (global-average-pooled, 64-d) of a ResNet-20 trained on the real
train split only: no Inception download, and the features are those of the task. In that space:

- KID (unbiased MMD with a cubic polynomial kernel, sound for a few hundred images) and FID, overall and
  per class, computed by torchmetrics (the features are extracted once and handed to its metrics through
  an identity module, so both metrics and every per-class subset share one pass of the network);
- the real-trained classifier's accuracy on the synthetic images, per class: a synthetic car that a
  real-photo classifier calls a truck is a bad car;
- per class, how much of the real class the synthetic images cover (coverage, Naeem et al. 2020: the share
  of real images with a synthetic image inside their k-nearest-real-neighbour ball) and recall (Kynkaanniemi
  et al. 2019: the share inside the synthetic images' own k-NN balls), with precision and density, their
  fidelity counterparts. KID and FID mix fidelity and diversity into one distance; a set of one canonical view
  per model can be close in KID and still cover little of the real class, which is what a classifier trained
  on it pays for;
- nearest real neighbours of a few synthetic images per class, and the per-class KID as a bar chart.

The feature network is trained once per real dataset (real only, augmented, at quick scale x 4) and cached in
DATA/gap-features/, or taken from any `mixreal train classify` run (`features_run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .datasets import RealDataset
from .loop import load_trained, normalise

MANIFOLD_KEYS = ("coverage", "recall", "precision", "density")  # manifold_scores' keys, also GapReport fields
MANIFOLD_K = 5  # neighbours that set each ball's radius (Naeem et al.'s choice for density and coverage)
METER_VERSION = 2  # 2: coverage, recall, precision and density beside KID and FID; older readings are re-measured
FEATURE_EPOCHS_FACTOR = 4  # x the quick scale's epochs: a real-only ResNet-20 that has converged


class _Given(nn.Module):
    """Features already extracted, passed through: torchmetrics' metrics take a feature module."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass
class FeatureNet:
    model: nn.Module
    class_names: list[str]
    image_size: int
    source: str  # where the weights came from
    digest: str = ""  # of the checkpoint file: readings by another network (retrained, another DATA) are not comparable

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, 3, H, W) -> (features (N, D) float64, logits (N, C))."""
        self.model.eval()
        feats, logits = [], []
        for i in range(0, len(images), batch):
            x = normalise(images[i:i + batch], self.image_size)
            f = self.model.embed(x)
            feats.append(f.double())
            logits.append(self.model.classify(f))
        return torch.cat(feats), torch.cat(logits)


def load_feature_net(run: Path) -> FeatureNet:
    """A classifier run's best checkpoint (loaded with weights_only=True) as a feature extractor."""
    import hashlib

    model, state, path = load_trained(run)
    cfg = state["config"]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return FeatureNet(model, list(state["class_names"]), int(cfg["image_size"]), str(path), digest)


def measured_by(reading: dict, net: FeatureNet) -> bool:
    """Whether a saved gap reading was taken in `net`'s features (readings from before the digest was recorded:
    by the network at the same path)."""
    if reading.get("features_digest"):
        return reading["features_digest"] == net.digest
    return reading.get("features") == net.source


def cached_feature_net(real_dir: Path, progress: bool = True, log=print) -> FeatureNet:
    """The real-only ResNet-20 of DATA, trained on first use into DATA/gap-features (resumable)."""
    from .loop import train_classifier

    net = trained_feature_net(real_dir)
    if net is None:
        run, cfg = Path(real_dir) / "gap-features", _feature_config()
        log(f"gap: training the feature network once for {real_dir} ({cfg.epochs} epochs, real only) -> {run}")
        train, val, test = (RealDataset.from_split(real_dir, s) for s in ("train", "val", "test"))
        train_classifier(cfg, train, val, test, None, run, train.class_names, progress=progress, log=lambda m: None)
        net = load_feature_net(run)
    return net


def trained_feature_net(real_dir: Path) -> FeatureNet | None:
    """DATA's feature network if it is trained to the end, else None (never trains)."""
    run = Path(real_dir) / "gap-features"
    summary = run / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("epochs") == _feature_config().epochs:
        return load_feature_net(run)
    return None


def _feature_config():
    from .config import preset

    return preset("resnet20", "quick", real_only=True, augment=True, seed=0, epochs_factor=FEATURE_EPOCHS_FACTOR)


@dataclass
class GapReport:
    kid: float  # overall, mean over subsets
    kid_std: float
    fid: float
    accuracy: float  # of the real-trained classifier on the synthetic images
    per_class: dict[str, dict] = field(default_factory=dict)  # class -> kid, kid_std, fid, accuracy, n
    n_real: int = 0
    n_synthetic: int = 0
    features: str = ""
    features_digest: str = ""
    # mean over classes of the class-conditional scores (real class c against synthetic class c)
    coverage: float = float("nan")
    recall: float = float("nan")
    precision: float = float("nan")
    density: float = float("nan")

    def to_dict(self) -> dict:
        return {"kid": self.kid, "kid_std": self.kid_std, "fid": self.fid, "accuracy": self.accuracy,
                "coverage": self.coverage, "recall": self.recall, "precision": self.precision,
                "density": self.density, "per_class": self.per_class, "n_real": self.n_real,
                "n_synthetic": self.n_synthetic, "features": self.features, "features_digest": self.features_digest,
                "meter_version": METER_VERSION}

    def table(self) -> str:
        nan = float("nan")
        lines = [f"{'class':<12} {'n':>6} {'KID x 100':>11} {'FID':>9} {'real-clf acc %':>15} {'coverage %':>11} "
                 f"{'recall %':>9} {'precision %':>12}"]
        for c, v in self.per_class.items():
            lines.append(f"{c:<12} {v['n']:>6} {100 * v['kid']:>11.3f} {v['fid']:>9.2f} {100 * v['accuracy']:>15.1f} "
                         f"{100 * v.get('coverage', nan):>11.1f} {100 * v.get('recall', nan):>9.1f} "
                         f"{100 * v.get('precision', nan):>12.1f}")
        lines.append(f"{'overall':<12} {self.n_synthetic:>6} {100 * self.kid:>11.3f} {self.fid:>9.2f} "
                     f"{100 * self.accuracy:>15.1f} {100 * self.coverage:>11.1f} {100 * self.recall:>9.1f} "
                     f"{100 * self.precision:>12.1f}")
        return "\n".join(lines)


def manifold_scores(real: torch.Tensor, fake: torch.Tensor, k: int = MANIFOLD_K) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020) of `fake` against
    `real`, features (N, D). Each point's ball reaches its k-th nearest neighbour in its own set."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} images on each side (real {len(real)}, synthetic {len(fake)})")
    real, fake = real.double(), fake.double()

    def radii(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # +1: each point is its own nearest

    r_real, r_fake = radii(real), radii(fake)
    d = torch.cdist(real, fake)  # (R, F)
    inside_real = d <= r_real[:, None]  # fake j inside real i's ball
    return {"precision": float(inside_real.any(0).double().mean()),
            "recall": float((d <= r_fake[None, :]).any(1).double().mean()),
            "density": float(inside_real.double().sum() / (k * len(fake))),
            "coverage": float((d.min(1).values <= r_real).double().mean())}


def kid_fid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, seed: int = 0) -> tuple[float, float, float]:
    """(KID mean, KID std, FID) between two sets of features (N, D) float64, by torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    dim = real.shape[1]
    size = int(min(len(real), len(fake), 1000))
    if size < 2:
        raise ValueError(f"need at least 2 images on each side (real {len(real)}, synthetic {len(fake)})")
    import warnings

    torch.manual_seed(seed)  # KID draws its subsets at random
    with warnings.catch_warnings():  # "will save all extracted features": a few thousand 64-d rows here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Given(dim), subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    k_mean, k_std = kid.compute()
    fid = FrechetInceptionDistance(feature=_Given(dim))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(k_mean), float(k_std), float(fid.compute())


def measure(net: FeatureNet, real_images: torch.Tensor, real_labels: torch.Tensor, syn_images: torch.Tensor,
            syn_labels: torch.Tensor, class_names: list[str]) -> tuple[GapReport, dict]:
    """The gap between real and synthetic images (uint8 (N, 3, H, W), labels in `class_names` order).
    Returns the report and the features (for the neighbours sheet)."""
    if list(class_names) != list(net.class_names):
        raise ValueError(f"the feature network was trained on classes {net.class_names}, the data has {class_names}")
    real_f, _ = net.features_and_logits(real_images)
    syn_f, syn_logits = net.features_and_logits(syn_images)
    correct = syn_logits.argmax(1) == syn_labels
    k, ks, f = kid_fid(real_f, syn_f)
    report = GapReport(kid=k, kid_std=ks, fid=f, accuracy=float(correct.double().mean()), n_real=len(real_f),
                       n_synthetic=len(syn_f), features=net.source, features_digest=net.digest)
    for c, name in enumerate(class_names):
        r, s = real_f[real_labels == c], syn_f[syn_labels == c]
        if len(r) < 2 or len(s) < 2:
            continue
        kc, kcs, fc = kid_fid(r, s)
        report.per_class[name] = {"kid": kc, "kid_std": kcs, "fid": fc, "n": int(len(s)),
                                  "accuracy": float(correct[syn_labels == c].double().mean()),
                                  **(manifold_scores(r, s) if min(len(r), len(s)) > MANIFOLD_K else {})}
    for key in MANIFOLD_KEYS:
        values = [v[key] for v in report.per_class.values() if key in v]
        if values:
            setattr(report, key, float(np.mean(values)))
    return report, {"real": real_f, "synthetic": syn_f}


def neighbours_sheet(path: Path, report: GapReport, feats: dict, real_images: torch.Tensor,
                     real_labels: torch.Tensor, syn_images: torch.Tensor, syn_labels: torch.Tensor,
                     class_names: list[str], per_class: int = 3, k: int = 6) -> None:
    """Left: for `per_class` synthetic images of each class, the image and its k nearest real images in
    feature space (green frame: same class). Right: per-class KID (x 100) and coverage as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real_n = feats["real"] / feats["real"].norm(dim=1, keepdim=True).clamp_min(1e-12)
    rows = []
    for c in range(len(class_names)):
        idx = torch.nonzero(syn_labels == c).flatten()[:per_class]
        for i in idx.tolist():
            q = feats["synthetic"][i] / feats["synthetic"][i].norm().clamp_min(1e-12)
            near = torch.topk(real_n @ q, k).indices
            rows.append((i, near.tolist()))
    fig = plt.figure(figsize=(2 + 1.1 * (k + 1) + 4, 0.6 + 1.05 * max(1, len(rows))))
    grid = fig.add_gridspec(max(1, len(rows)), k + 2, width_ratios=[1] * (k + 1) + [4])
    for r, (i, near) in enumerate(rows):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(syn_images[i].permute(1, 2, 0).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(class_names[int(syn_labels[i])], fontsize=8)
        if r == 0:
            ax.set_title("synthetic", fontsize=8)
        for j, n in enumerate(near):
            ax = fig.add_subplot(grid[r, j + 1])
            ax.imshow(real_images[n].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            same = int(real_labels[n]) == int(syn_labels[i])
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if same else "tab:red")
                spine.set_linewidth(2)
            if r == 0 and j == 0:
                ax.set_title("nearest real images", fontsize=8, loc="left")
    names = list(report.per_class)
    half = max(1, len(rows) // 2)
    ax = fig.add_subplot(grid[:half, -1] if len(rows) > 1 else grid[:, -1])
    vals = [100 * report.per_class[c]["kid"] for c in names]
    errs = [100 * report.per_class[c]["kid_std"] for c in names]
    ax.barh(names, vals, xerr=errs, color="tab:blue")
    ax.axvline(100 * report.kid, color="k", ls="--", lw=1, label=f"overall {100 * report.kid:.2f}")
    ax.set_xlabel("KID x 100 (lower = closer to the real photos)")
    ax.legend(fontsize=8)
    ax.invert_yaxis()
    covered = [c for c in names if "coverage" in report.per_class[c]]
    if len(rows) > 1 and covered:  # diversity beside fidelity: the share of each real class renders stand near
        ax = fig.add_subplot(grid[half:, -1])
        ax.barh(covered, [100 * report.per_class[c]["coverage"] for c in covered], color="tab:green")
        ax.axvline(100 * report.coverage, color="k", ls="--", lw=1, label=f"overall {100 * report.coverage:.1f}")
        ax.set_xlim(0, 100)
        ax.set_xlabel("coverage % (higher = renders near more photos)")
        ax.legend(fontsize=8)
        ax.invert_yaxis()
    fig.tight_layout()
    import io

    from renderer.export import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def collect(source, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (or the first n) images and labels of a dataset or stream as uint8 (N, 3, H, W) and (N,)."""
    images, labels = [], []
    for i, (img, label) in enumerate(source):
        if n is not None and i >= n:
            break
        images.append(img)
        labels.append(int(label))
    if not images:
        raise ValueError("no synthetic images of the real classes")
    return torch.stack(images), torch.tensor(labels)


def spearman(x, y) -> float:
    """Rank correlation of two sequences (scipy), nan when either is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
