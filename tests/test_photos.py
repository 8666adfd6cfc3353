"""`mixreal data photos`: a user's photo folder as a real dataset, on real photos with real defects."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from tests.conftest import require_data
from train.datasets import RealDataset
from train.photos import Fractions, build_from_folder, find_photos, load_photo


def _photos(tmp_path: Path, classes=("bird", "ship"), per_class: int = 40) -> Path:
    """A class-folder photo set copied from the shared real photos (32 px CIFAR JPEGs)."""
    src = require_data("backgrounds", "cifar10-other-classes")
    root = tmp_path / "photos"
    for c in classes:
        (root / c).mkdir(parents=True)
        for p in sorted((src / c).glob("*.jpg"))[:per_class]:
            shutil.copy(p, root / c / p.name)
    return root


def _hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.sha1(x.tobytes()).digest() for x in images}


def test_a_class_folder_becomes_stratified_seeded_splits(tmp_path):
    root = _photos(tmp_path)
    splits, info = build_from_folder(root, 32, Fractions(0.7, 0.1, 0.2), seed=0, workers=1, progress=False)
    for name, n in (("train", 28), ("val", 4), ("test", 8)):
        assert np.bincount(splits[name].labels, minlength=2).tolist() == [n, n]
    assert splits["train"].class_names == ["bird", "ship"]
    # every photo once, and 32 px JPEGs kept pixel for pixel
    all_files = np.concatenate([splits[s].source_label for s in splits])
    assert sorted(all_files) == sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    first = splits["test"]
    assert np.array_equal(first.images[0], np.asarray(Image.open(root / first.source_label[0]).convert("RGB")))
    again, _ = build_from_folder(root, 32, Fractions(0.7, 0.1, 0.2), seed=0, workers=2, progress=False)
    assert all(np.array_equal(again[s].images, splits[s].images) for s in splits)  # any number of workers
    other, _ = build_from_folder(root, 32, Fractions(0.7, 0.1, 0.2), seed=1, workers=1, progress=False)
    assert list(other["test"].source_label) != list(splits["test"].source_label)
    assert info["images_found"] == 80 and info["skipped"] == 0


def test_broken_tiny_and_duplicate_files_are_reported_and_never_leak_into_test(tmp_path):
    root = _photos(tmp_path)
    good = sorted((root / "bird").glob("*.jpg"))
    (root / "bird" / "truncated.jpg").write_bytes(good[0].read_bytes()[:200])
    (root / "bird" / "notes.jpg").write_text("not an image")
    Image.new("RGB", (4, 4), "red").save(root / "ship" / "icon.png")
    for k in range(5):  # re-saved copies of one photo: must end up in one split only
        shutil.copy(good[1], root / "bird" / f"copy-{k}.jpg")
    shutil.copy(good[2], root / "ship" / "misfiled.jpg")  # the same photo under two classes
    messages: list[str] = []
    splits, info = build_from_folder(root, 32, seed=0, workers=1, progress=False, on_skip=messages.append)
    reasons = {s["file"]: s["reason"] for s in info["skipped_files"]}
    assert set(reasons) == {"bird/truncated.jpg", "bird/notes.jpg", "ship/icon.png"}
    assert "too small" in reasons["ship/icon.png"] and "unreadable" in reasons["bird/notes.jpg"]
    assert any("truncated.jpg" in m for m in messages)
    assert info["duplicates_removed"] == 5
    assert sorted(info["conflicting_duplicates"]) == sorted([f"bird/{good[2].name}", "ship/misfiled.jpg"])
    hashes = [_hashes(splits[s].images) for s in ("train", "val", "test")]
    assert not (hashes[0] & hashes[2]) and not (hashes[0] & hashes[1]) and not (hashes[1] & hashes[2])
    assert sum(len(splits[s]) for s in splits) == 80 - 1  # good[2] dropped from both classes


def test_any_photo_mode_and_orientation_is_read_as_seen(tmp_path):
    # a landscape photo stored sideways with EXIF "rotate 90 clockwise": shown portrait, red on top
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, :40] = (255, 0, 0)
    a[:, 40:] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    x = load_photo(tmp_path / "rotated.jpg", 32, "stretch").astype(int)
    assert x[:12, :, 0].mean() > 200 and x[:12, :, 2].mean() < 60  # top: red
    assert x[-12:, :, 2].mean() > 200 and x[-12:, :, 0].mean() < 60  # bottom: blue
    # transparency onto white, 16-bit grey scaled to 8 bits, CMYK and palette converted
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (0, 128, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    x = load_photo(tmp_path / "cutout.png", 32)
    assert x[0, 0].tolist() == [255, 255, 255] and x[16, 16].tolist() == [0, 128, 0]
    Image.fromarray(np.full((32, 32), 32768, np.uint16)).save(tmp_path / "grey16.png")
    assert abs(int(load_photo(tmp_path / "grey16.png", 32)[5, 5, 0]) - 128) <= 1
    Image.new("CMYK", (48, 32), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    x = load_photo(tmp_path / "print.jpg", 16)
    assert x.shape == (16, 16, 3) and x[..., 0].mean() > 200 and x[..., 1].mean() < 60
    Image.new("P", (32, 32), 3).save(tmp_path / "palette.gif")
    assert load_photo(tmp_path / "palette.gif", 32).shape == (32, 32, 3)


def test_fits_keep_what_they_promise(tmp_path):
    a = np.zeros((60, 120, 3), np.uint8)
    a[:, :20] = 255  # a white band at the left: the centre crop (x 30-90) cuts it away, pad keeps it
    Image.fromarray(a).save(tmp_path / "wide.png")
    crop = load_photo(tmp_path / "wide.png", 30, "crop")
    pad = load_photo(tmp_path / "wide.png", 30, "pad")
    assert crop.max() == 0
    assert pad[:5].min() == 255 and pad[15, 1].min() > 200 and pad[15, 20].max() == 0  # white bars, band, photo


def test_a_pre_split_folder_keeps_its_splits_and_draws_val_from_train(tmp_path):
    flat = _photos(tmp_path, per_class=30)
    root = tmp_path / "split"
    for c in ("bird", "ship"):
        files = sorted((flat / c).glob("*.jpg"))
        for split, chunk in (("train", files[:20]), ("test", files[20:])):
            (root / split / c).mkdir(parents=True)
            for p in chunk:
                shutil.copy(p, root / split / c / p.name)
    photos, presplit = find_photos(root)
    assert presplit and len(photos) == 60
    splits, info = build_from_folder(root, 32, Fractions(0.8, 0.2, 0.0), seed=0, workers=1, progress=False)
    assert info["layout"] == "pre-split"
    assert all(s.startswith("test/") for s in splits["test"].source_label) and len(splits["test"]) == 20
    assert len(splits["val"]) == 8 and all(s.startswith("train/") for s in splits["val"].source_label)
    assert len(splits["train"]) == 32
    # `train/` beside a class folder is the class train (the vehicle), not a split
    vehicles = tmp_path / "vehicles"
    shutil.copytree(flat / "bird", vehicles / "train")
    shutil.copytree(flat / "ship", vehicles / "Ships")
    photos, presplit = find_photos(vehicles)
    assert not presplit and {p.label for p in photos} == {"train", "ship"}


def test_cli_builds_a_dataset_that_train_classify_reads(tmp_path):
    src = require_data("backgrounds", "cifar10-other-classes")
    root = tmp_path / "photos"
    for folder, c in (("Boats", "ship"), ("frogs", "frog")):  # folder names go through the alias table
        (root / folder).mkdir(parents=True)
        for p in sorted((src / c).glob("*.jpg"))[:30]:
            shutil.copy(p, root / folder / p.name)
    (root / "frogs" / "cut-short.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    out = tmp_path / "data"
    r = CliRunner().invoke(main, ["data", "photos", str(root), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "2 classes (frogs, ship)" in r.output  # Boats/ -> ship
    assert "1 file skipped, 0 duplicates removed" in r.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["test"] == {"frogs": 6, "ship": 6} and (out / "preview.png").is_file()
    assert RealDataset.from_split(out, "val").images.shape[1:] == (3, 32, 32)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(out), "--ratio", "1:0", "--epochs", "1",
                                  "--scale", "quick", "--workers", "0", "--out", str(run), "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "summary.json").read_text())["classes"] == ["frogs", "ship"]
    # a split cut short (a copy that stopped half-way) is named in one line by every command that reads it
    torn = tmp_path / "torn"
    shutil.copytree(out, torn)
    data = (torn / "train.npz").read_bytes()
    (torn / "train.npz").write_bytes(data[: len(data) // 2])
    for cmd in (["train", "classify", "--real", str(torn), "--ratio", "1:0", "--epochs", "1", "--workers", "0",
                 "--out", str(tmp_path / "run-torn")],
                ["gap", "--real", str(torn), "--synthetic", str(out), "--split", "train", "--out", str(tmp_path / "g")],
                ["refine", "--match-photos", str(out), "--input", str(torn), "--out", str(tmp_path / "r")]):
        r = CliRunner().invoke(main, [*cmd, "--quiet"])
        assert r.exit_code == 1 and "Traceback" not in r.output, (cmd, r.output)
        assert f"{torn / 'train.npz'}: not a CIFAR-DA split (BadZipFile" in r.output, (cmd, r.output)
    # another size into the same folder would silently change what earlier runs were trained on
    r = CliRunner().invoke(main, ["data", "photos", str(root), "--out", str(out), "--size", "64", "--quiet"])
    assert r.exit_code != 0 and "other settings (size)" in r.output
    r = CliRunner().invoke(main, ["data", "photos", str(tmp_path / "run"), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "no images in class folders" in r.output and "Traceback" not in r.output
    # one class builds (a folder may grow class by class) but does not train to a meaningless 100 %
    shutil.rmtree(root / "frogs")
    one = tmp_path / "one"
    r = CliRunner().invoke(main, ["data", "photos", str(root), "--out", str(one), "--quiet"])
    assert r.exit_code == 0 and "1 class (ship)" in r.output and "one class only" in r.output, r.output
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(one), "--ratio", "1:0", "--epochs", "1",
                                  "--workers", "0", "--out", str(tmp_path / "run-one"), "--quiet"])
    assert r.exit_code == 1 and "1 class (ship): a classifier needs at least 2" in r.output, r.output
    assert not (tmp_path / "run-one" / "summary.json").exists()


def test_synthetic_images_come_at_the_photos_size(tmp_path, rendered32):
    """Real and synthetic images share every batch: a stream renders at the photos' size, a rendered folder of
    another size is refused in one line."""
    src = require_data("backgrounds", "cifar10-other-classes")
    meshes = require_data("meshes")
    root = tmp_path / "photos"
    for c in ("ship", "frog"):
        (root / c).mkdir(parents=True)
        for p in sorted((src / c).glob("*.jpg"))[:20]:
            shutil.copy(p, root / c / p.name)
    out = tmp_path / "data48"
    assert CliRunner().invoke(main, ["data", "photos", str(root), "--out", str(out), "--size", "48",
                                     "--quiet"]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(out), "--stream", str(meshes), "--ratio", "1:1",
                                  "--epochs", "1", "--scale", "quick", "--batch-size", "16", "--workers", "0",
                                  "--out", str(tmp_path / "run"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "no synthetic images for frog" in r.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["synthetic"]["size"] == 48
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(out), "--synthetic", str(rendered32),
                                  "--ratio", "1:1", "--epochs", "1", "--out", str(tmp_path / "run2"), "--quiet"])
    assert r.exit_code != 0 and "are 32 px, the real images 48 px" in r.output and "Traceback" not in r.output


def test_predict_scores_new_photos_as_the_run_scored_its_test_split(tmp_path):
    """`mixreal predict` on the test split's own files gives exactly the accuracy the run recorded for them."""
    root = _photos(tmp_path, per_class=60)
    data, run = tmp_path / "data", tmp_path / "run"
    assert CliRunner().invoke(main, ["data", "photos", str(root), "--out", str(data), "--quiet"]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(data), "--ratio", "1:0", "--epochs", "4",
                                  "--scale", "quick", "--batch-size", "32", "--workers", "0", "--out", str(run),
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    test = RealDataset.from_split(data, "test")
    held_out = tmp_path / "held-out"
    for rel in np.load(data / "test.npz")["source_label"]:
        (held_out / Path(rel).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, held_out / rel)
    (held_out / "ship" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "pred"
    r = CliRunner().invoke(main, ["predict", "--run", str(run), str(held_out), "--out", str(out), "--top", "2",
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.jpg" in r.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["n"] == len(test) and report["accuracy"] == pytest.approx(summary["test_acc_at_best_val"])
    assert np.array(report["confusion"]).sum() == len(test) and (out / "confusion.png").is_file()
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "path,class1,p1,class2,p2,true" and len(rows) == len(test) + 1
    # a class's folder given alone is scored as that class
    r = CliRunner().invoke(main, ["predict", "--run", str(run), str(held_out / "bird"), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    birds = int((test.labels == test.class_names.index("bird")).sum())
    assert json.loads((out / "evaluation.json").read_text())["n"] == birds > 0
    # one file outside any class's folder: no label, CSV on standard output
    one = tmp_path / "loose" / "photo.jpg"
    one.parent.mkdir()
    shutil.copy(sorted((root / "bird").glob("*.jpg"))[0], one)
    r = CliRunner().invoke(main, ["predict", "--run", str(run), str(one), "--quiet"])
    line = r.stdout.splitlines()[1]
    assert r.exit_code == 0 and line.startswith(f"{one},") and line.split(",")[1] in ("bird", "ship")
    assert line.endswith(",") and "1 photo classified" in r.stderr
    # a checkpoint that is not a classifier's is refused in one line
    torch_file = tmp_path / "other.pt"
    import torch

    torch.save({"weights": torch.zeros(3)}, torch_file)
    r = CliRunner().invoke(main, ["predict", "--run", str(torch_file), str(one)])
    assert r.exit_code != 0 and "not a mixreal classifier checkpoint" in r.output and "Traceback" not in r.output


def test_adding_a_class_leaves_the_other_classes_splits_alone(tmp_path):
    root = _photos(tmp_path, classes=("ship", "frog"), per_class=20)
    before, _ = build_from_folder(root, 32, seed=0, workers=1, progress=False)
    shutil.copytree(require_data("backgrounds", "cifar10-other-classes") / "bird", root / "bird")
    after, _ = build_from_folder(root, 32, seed=0, workers=1, progress=False)
    for s in ("train", "val", "test"):
        assert [f for f in before[s].source_label] == [f for f in after[s].source_label if not f.startswith("bird/")]
