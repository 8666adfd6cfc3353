"""The classifier training loop: mixed real + synthetic minibatches, tested on real images only.

One function, read top to bottom: set up, resume if RUN holds a checkpoint, then per epoch train on
MixedBatches, evaluate on the real validation and test sets, log, keep the best-on-validation and the
last checkpoint. Everything random is fixed by (seed, epoch) and the checkpointed RNG state, so a run
killed and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from renderer.export import atomic_temp

from .config import TrainConfig, epoch_batches
from .datasets import RealDataset
from .mixing import MixedBatches
from .models import build_model, count_parameters
from .report import plot_curves, read_metrics, tensorboard_writer, write_metrics, write_summary

MEAN, STD = 0.5, 0.25  # uint8 -> roughly zero-mean unit-variance, the same for real and synthetic
# a run whose last-epoch training accuracy stays below this has not fitted its own training images: its real
# test accuracy says more about the budget than about the data (flagged in summary.json and the log)
FIT_THRESHOLD = 0.7
# accuracy.png is redrawn at most this often (and after the last epoch): a matplotlib figure costs ~0.3 s, more
# than a whole epoch of a small run
PLOT_EVERY_S = 30.0
PAPER_TEST_PER_CLASS = 50  # the paper's test split: 50 images per class


class RunMismatch(ValueError):
    """RUN holds a checkpoint of a run with other settings."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def loader_workers(requested: int | None, device: torch.device, ranks: int = 1) -> int:
    """DataLoader workers for the synthetic source: as requested, else 2 where training runs on the CPU (it
    needs the cores itself: 2 measured best on 2 cores) and on a GPU this process's share of the CPU cores
    less 2, at most 8. On an H200 one rendering process keeps a quarter to half of the GPU busy and 8 workers
    fed ResNet-20 1.33x what it consumed (docs/RESULTS.md, "GPU figures")."""
    if requested is not None:
        return requested
    if device.type != "cuda":
        return 2
    return max(2, min(8, (os.cpu_count() or 2) // max(1, ranks) - 2))


def augment(images: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with `pad` px zero padding and a horizontal flip, per image, on a uint8 batch."""
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def normalise(images: torch.Tensor, size: int) -> torch.Tensor:
    x = images.float().div_(255.0).sub_(MEAN).div_(STD)
    if x.shape[-1] != size:  # e.g. AlexNet at 224 px fed 32 px CIFAR images
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def class_logits(model: torch.nn.Module, data: RealDataset, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """Logits (N, classes), float32 on the CPU."""
    model.eval()
    out = []
    for i in range(0, len(data), 512):
        x = normalise(data.images[i:i + 512].to(device), cfg.image_size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def predict(model: torch.nn.Module, data: RealDataset, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """Predicted labels (N,) on the CPU."""
    logits = class_logits(model, data, cfg, device)
    return logits.argmax(1) if len(logits) else torch.zeros(0, dtype=torch.int64)


def evaluate(model: torch.nn.Module, data: RealDataset, cfg: TrainConfig, device: torch.device) -> tuple[float, float]:
    """Accuracy and mean cross-entropy. The loss is kept because a 200-image validation split resolves
    accuracy only in steps of 0.5 %: candidates that tie on it are told apart by their loss (`choose_ratio`)."""
    if not len(data):
        return 0.0, 0.0
    logits = class_logits(model, data, cfg, device)
    acc = (logits.argmax(1) == data.labels).double().mean().item()
    return acc, torch.nn.functional.cross_entropy(logits, data.labels).item()


def choose_ratio(summaries: dict[str, dict]) -> str:
    """The mixing ratio whose run validated best: highest validation accuracy, ties broken by the lower
    validation loss at that epoch (runs recorded before the loss was kept tie on it: the first wins)."""
    return max(summaries, key=lambda r: (summaries[r]["best_val_acc"], -summaries[r].get("best_val_loss", 0.0)))


def test_breakdown(pred: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict:
    """Accuracy with its Wilson 95 % interval, per class, and on the paper-sized subset (the first 50
    test images of each class)."""
    from .stats import wilson

    correct = pred == labels
    rank = torch.zeros_like(labels)
    for c in range(len(class_names)):
        idx = torch.nonzero(labels == c).flatten()
        rank[idx] = torch.arange(len(idx))
    small = rank < PAPER_TEST_PER_CLASS
    small_acc = float(correct[small].double().mean()) if small.any() else None
    n, k = len(labels), int(correct.sum())
    return {
        "n": n, "accuracy": k / max(n, 1), "interval95": list(wilson(k, n)),
        "per_class": {name: float(correct[labels == c].double().mean()) if (labels == c).any() else None
                      for c, name in enumerate(class_names)},
        "paper_size": {"n": int(small.sum()), "accuracy": small_acc,
                       "interval95": list(wilson(int(correct[small].sum()), int(small.sum())))},
    }


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a kill mid-save leaves the previous checkpoint intact. torch.save streams into the temp
    file rather than going through atomic_write_bytes, which would hold the whole checkpoint in memory
    once more (AlexNet with its Adam state is about 0.7 GB)."""
    fd, tmp = atomic_temp(path)
    sink = _KeepsWriteError(os.fdopen(fd, "wb"))
    try:
        with sink.f:
            try:
                torch.save(state, sink)
            except RuntimeError:  # how torch reports a write the system refused (a full disk): say what it was
                if sink.error is None:
                    raise
                raise OSError(sink.error.errno, sink.error.strerror, str(path)) from None
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # the final flush failed
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _KeepsWriteError:
    """A file torch.save writes through, keeping the OSError a write raised (torch replaces it with a
    RuntimeError that names neither the file nor the reason)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise ValueError(f"{path}: unreadable checkpoint ({_checkpoint_problem(exc)})") from None


def _checkpoint_problem(exc: BaseException) -> str:
    """Why torch.load refused a file, in words a user can act on. torch's own message for a pickle with
    code in it ends by suggesting weights_only=False, which mixreal never does."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in text.lower():
        return ("it holds objects other than tensors and plain values, as mixreal's own never do; "
                "refused, since loading it could run code")
    if isinstance(exc, EOFError) or "central directory" in text or "zip archive" in text:
        return "truncated or not a PyTorch file"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"


def checkpoint_path(path: Path) -> Path:
    """What --init / TrainConfig.init names: a run folder means its best.pt; resolved, so that a resume can
    tell what a run started from."""
    return (path / "best.pt" if path.is_dir() else path).resolve()


def load_trained(run: Path) -> tuple[torch.nn.Module, dict, Path]:
    """A trained classifier from a run folder (its best.pt) or a checkpoint file, loaded with weights_only=True:
    (model on the CPU, the checkpoint's dict, its path). FileNotFoundError / a one-line ValueError otherwise."""
    path = checkpoint_path(Path(run))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (give a `mixreal train classify` run folder or its best.pt)")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"model", "config", "class_names"} <= set(state):
        raise ValueError(f"{path}: not a mixreal classifier checkpoint")
    cfg = state["config"]
    try:
        model = build_model(cfg["model"], len(state["class_names"]), int(cfg["image_size"]))
        model.load_state_dict(state["model"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: weights do not fit a {cfg.get('model')} ({str(exc).splitlines()[0]})") from None
    return model, state, path


def init_weights(path: Path, cfg: TrainConfig, class_names: list[str]) -> dict:
    """The model weights of a run folder (its best.pt) or a checkpoint file, checked against this run's model
    and classes: a one-line ValueError naming the file otherwise."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint to start from (--init takes a run folder or a .pt file)")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a mixreal classifier checkpoint")
    model = state.get("config", {}).get("model")
    if model != cfg.model:
        raise ValueError(f"{path}: a {model} checkpoint, this run trains a {cfg.model}")
    if list(state.get("class_names", [])) != list(class_names):
        raise ValueError(f"{path}: trained on classes {', '.join(state.get('class_names', []))}, "
                         f"this run has {', '.join(class_names)}")
    return state["model"]


def _comparable(cfg: dict) -> dict:
    ignore = {"epochs", "workers", "device", "extra"}  # may change between a run and its resumption
    full = {**TrainConfig().to_dict(), **cfg}  # a setting added since the run started holds its default
    return {k: v for k, v in full.items() if k not in ignore}


def describe_source(synthetic) -> dict | None:
    """The synthetic source as JSON (None: real only): a stream's models and full render settings, or a
    rendered folder's path and size."""
    if synthetic is None:
        return None
    describe = getattr(synthetic, "describe", None)
    return describe() if describe is not None else {"kind": type(synthetic).__name__, "images": len(synthetic)}


def refine_synthetic(images: torch.Tensor, is_real: torch.Tensor, transform) -> torch.Tensor:
    """A mixed batch with its synthetic images passed through `transform` (uint8 -> uint8), the real kept."""
    if transform is None or bool(is_real.all()):
        return images
    images = images.clone()
    images[~is_real] = transform(images[~is_real])
    return images


def train_classifier(cfg: TrainConfig, train: RealDataset | None, val: RealDataset, test: RealDataset,
                     synthetic, out: Path, class_names: list[str], progress: bool = True, log=print,
                     synthetic_transform=None) -> dict:
    """Train, evaluating on real val and test images every epoch; returns summary.json's content.

    synthetic_transform: applied to every batch's synthetic images before the model sees them (a MrGAN
    refiner's s2r): refinement on the fly, with no refined copy on disk."""
    from . import distributed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dd = distributed.setup(cfg.device)  # under torchrun: this rank's share of every batch; else one process
    device = dd.device
    if synthetic is not None and cfg.workers is None:
        cfg = replace(cfg, workers=loader_workers(None, device, dd.world))
    if not dd.main:
        log = _silent
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg.model, len(class_names), cfg.image_size).to(device, memory_format=torch.channels_last)
    if cfg.init is not None:  # a resumed run then loads its own last.pt over these
        model.load_state_dict(init_weights(Path(cfg.init), cfg, class_names))
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: sgd or adam")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)

    # what the synthetic images are, as JSON: recorded in the checkpoint and summary, so that a run can be
    # reproduced and a resume with other render settings is refused rather than mixing two distributions
    source = describe_source(synthetic)
    side = int(val.images.shape[-1])  # the photos' side: `mixreal predict` brings new photos to it
    # resume where a killed run stopped: the last completed epoch's checkpoint
    start_epoch, best = 0, {"val_acc": -1.0, "test_acc": 0.0, "epoch": -1}
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.is_file():
        state = load_checkpoint(last_path)
        if _comparable(state["config"]) != _comparable(cfg.to_dict()):
            changed = sorted(k for k, v in _comparable(cfg.to_dict()).items() if state["config"].get(k) != v)
            raise RunMismatch(f"{out}: holds a run with other settings ({', '.join(changed)}); use another --out")
        # a checkpoint from before sources were recorded holds none: nothing to compare it with
        # (settings added since it was written take their defaults, which draw what it drew)
        from renderer.export import with_new_defaults

        before = with_new_defaults(state["synthetic"]) if state.get("synthetic") is not None else None
        if before is not None and before != source:
            now = source or {}
            changed = sorted(k for k in {**before, **now} if before.get(k) != now.get(k))
            raise RunMismatch(f"{out}: holds a run trained on other synthetic images ({', '.join(changed)}); "
                              "use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        log(f"resuming {out} after epoch {start_epoch} (best validation {100 * best['val_acc']:.2f}%)")
    rows = [r for r in read_metrics(out / "metrics.csv") if r["epoch"] < start_epoch]

    runner = model
    if dd.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    runner = torch.compile(runner) if cfg.compile else runner
    n_batches = (epoch_batches(cfg, len(train)) if train is not None
                 else max(1, len(val) * 10 // cfg.batch_size))
    batches = MixedBatches(train, synthetic, cfg.ratio, cfg.batch_size, seed=cfg.seed, workers=cfg.workers or 0,
                           start_epoch=start_epoch, epoch_batches=n_batches, rank=dd.rank, world=dd.world)
    writer = tensorboard_writer(out / "tensorboard") if dd.main else None
    amp = cfg.amp and device.type == "cuda"
    title = f"{cfg.model}, ratio {cfg.ratio}, augment {'on' if cfg.augment else 'off'}, seed {cfg.seed}"
    try:
        plotted = float("-inf")
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + 7919 * dd.rank)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen, t0 = 0, time.perf_counter()
            it = batches
            if progress:
                from tqdm import tqdm

                it = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                          dynamic_ncols=True)
            for images, labels, is_real in it:
                images = refine_synthetic(images, is_real, synthetic_transform)
                if cfg.augment:
                    images = augment(images, gen)
                x = normalise(images.to(device, non_blocking=True), cfg.image_size)
                y = labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = runner(x)
                    loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                # accumulate on the device: no host synchronisation inside the step
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
            seen_t = torch.tensor(seen, device=device)
            loss_sum, correct, seen_t = distributed.sum_across(dd, loss_sum, correct, seen_t)
            seen = int(seen_t)
            lr = opt.param_groups[0]["lr"]
            sched.step()
            seconds = time.perf_counter() - t0
            val_acc, val_loss = evaluate(model, val, cfg, device)
            test_pred = predict(model, test, cfg, device)
            test_acc = (test_pred == test.labels).double().mean().item() if len(test) else 0.0
            row = {"epoch": epoch, "lr": lr, "train_loss": loss_sum.item() / max(seen, 1),
                   "train_acc": correct.item() / max(seen, 1), "val_acc": val_acc, "val_loss": val_loss,
                   "test_acc": test_acc,
                   "seconds": seconds, "images_per_s": seen / max(seconds, 1e-9)}
            rows.append(row)
            if writer is not None:
                for k in ("train_loss", "train_acc", "val_acc", "val_loss", "test_acc", "lr", "images_per_s"):
                    writer.add_scalar(k, row[k], epoch + 1)
                writer.flush()
            improved = val_acc > best["val_acc"]  # the same on every rank: the same weights, the same images
            if improved:
                best = {"val_acc": val_acc, "val_loss": val_loss, "test_acc": test_acc, "epoch": epoch,
                        "test": test_breakdown(test_pred, test.labels, list(class_names))}
            if dd.main:  # rank 0 alone writes
                if improved:
                    save_checkpoint(best_path, {"model": model.state_dict(), "epoch": epoch,
                                                "config": cfg.to_dict(), "class_names": list(class_names),
                                                "real_image_size": side})
                save_checkpoint(last_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                            "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                                            "epoch": epoch, "best": best, "config": cfg.to_dict(),
                                            "synthetic": source,
                                            "class_names": list(class_names)})
                write_metrics(out / "metrics.csv", rows)
                if epoch == cfg.epochs - 1 or time.monotonic() - plotted >= PLOT_EVERY_S:
                    plot_curves(out / "accuracy.png", rows, title)
                    plotted = time.monotonic()
            distributed.barrier(dd)
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f}, train {100 * row['train_acc']:.1f}%, "
                f"val {100 * val_acc:.2f}%, test {100 * test_acc:.2f}% ({row['images_per_s']:.0f} img/s)")
    finally:
        batches.close()
    if writer is not None:
        writer.close()
    final_train = rows[-1]["train_acc"] if rows else 0.0
    fits = final_train >= FIT_THRESHOLD
    if not fits:
        log(f"warning: {out}: last-epoch training accuracy {100 * final_train:.1f}% < {100 * FIT_THRESHOLD:.0f}%: "
            "the model has not fitted its training images; train longer before reading its test accuracy")
    summary = {
        "test_acc_at_best_val": best["test_acc"],
        "test_at_best_val": best.get("test"),
        "final_train_acc": final_train,
        "fits_training_images": fits,
        "best_val_acc": best["val_acc"],
        **({"best_val_loss": best["val_loss"]} if "val_loss" in best else {}),  # absent in runs resumed from before
        "best_epoch": best["epoch"] + 1,
        "final_test_acc": rows[-1]["test_acc"] if rows else None,
        "epochs": len(rows),
        "classes": list(class_names),
        "real_image_size": side,
        "real_train_images": len(train) if train is not None else 0,
        "unreadable_synthetic_images": batches.skipped,  # in this session: replaced, reported by name
        "parameters": count_parameters(model),
        "device": str(device),
        "world_size": dd.world,
        "config": replace(cfg).to_dict(),
        "synthetic": source,
    }
    if dd.main:
        write_summary(out / "summary.json", summary)
    return summary


def _silent(message: str) -> None:
    """Log of ranks other than 0: they train and say nothing."""
