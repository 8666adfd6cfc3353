"""Reading CIFAR safely and building CIFAR-DA splits."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import require_data
from train.cifar import CifarFormatError, load_cifar, safe_unpickle
from train.cifar_da import Counts, build, load_split
from train.classes import CLASS_MAPS, canonical, load_class_map

C10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
C100 = sorted({"bicycle", "bus", "motorcycle", "train", "baby", "boy", "girl", "man", "woman", "pickup_truck",
               *(f"other{i}" for i in range(90))})


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def _dump(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Small CIFAR-10 / CIFAR-100 python releases and a CIFAR-10 binary release, official layouts."""
    root = tmp_path_factory.mktemp("cifar")
    per_class_train, per_class_test = 24, 12
    c10 = root / "cifar-10-batches-py"
    c10.mkdir()
    labels = np.repeat(np.arange(10), per_class_train)
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(len(labels))]
    data = _images(len(labels), 1)
    for i, chunk in enumerate(np.array_split(np.arange(len(labels)), 5)):
        _dump(c10 / f"data_batch_{i + 1}", {b"batch_label": b"b", b"labels": labels[chunk].tolist(),
                                            b"data": data[chunk], b"filenames": [b"x.png"] * len(chunk)})
    test_labels = np.repeat(np.arange(10), per_class_test)
    _dump(c10 / "test_batch", {b"labels": test_labels.tolist(), b"data": _images(len(test_labels), 2)})
    _dump(c10 / "batches.meta", {b"label_names": [n.encode() for n in C10], b"num_vis": 3072})
    c100 = root / "cifar-100-python"
    c100.mkdir()
    fine = np.repeat(np.arange(100), per_class_train)
    _dump(c100 / "train", {b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist(),
                           b"data": _images(len(fine), 3)})
    fine_t = np.repeat(np.arange(100), per_class_test)
    _dump(c100 / "test", {b"fine_labels": fine_t.tolist(), b"coarse_labels": (fine_t // 5).tolist(),
                          b"data": _images(len(fine_t), 4)})
    _dump(c100 / "meta", {b"fine_label_names": [n.encode() for n in C100], b"coarse_label_names": [b"c"] * 20})
    binary = root / "bin" / "cifar-10-batches-bin"
    binary.mkdir(parents=True)
    for i in range(1, 6):
        (binary / f"data_batch_{i}.bin").write_bytes(b"")
    return root


def test_python_releases_load(releases):
    c10 = load_cifar(releases, "cifar10")
    assert c10["train"].images.shape == (240, 32, 32, 3) and c10["train"].names == C10
    assert np.bincount(c10["test"].labels).tolist() == [12] * 10
    c100 = load_cifar(releases / "cifar-100-python", "cifar100")
    assert len(c100["train"]) == 2400 and c100["train"].names == C100
    # pixels: channel-first rows of 1024 become HWC
    raw = safe_unpickle(releases / "cifar-10-batches-py" / "data_batch_1")["data"]
    np.testing.assert_array_equal(c10["train"].images[0, 0, 0], raw[0, [0, 1024, 2048]])


def test_binary_release_loads(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, 20, dtype=np.uint8)
        records = np.concatenate([labels[:, None], _images(20, int(labels[0]))], axis=1)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(C10) + "\n")
    c10 = load_cifar(tmp_path, "cifar10")
    assert len(c10["train"]) == 100 and len(c10["test"]) == 20
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-7])
    with pytest.raises(CifarFormatError, match="test_batch.bin.*truncated"):
        load_cifar(tmp_path, "cifar10")


def test_tampered_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "data_batch_1"
    _dump(path, {b"data": Evil(), b"labels": [0]})
    with pytest.raises(CifarFormatError) as err:
        safe_unpickle(path)
    assert "refused" in str(err.value) and "system" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


def test_truncated_pickle_gives_one_line_error(releases, tmp_path):
    good = (releases / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(CifarFormatError) as err:
        safe_unpickle(bad)
    assert "truncated or corrupt" in str(err.value) and "\n" not in str(err.value)


def test_splits_have_exact_counts_no_overlap_and_are_seeded(releases):
    sources = {"cifar10": load_cifar(releases, "cifar10"), "cifar100": load_cifar(releases, "cifar100")}
    counts = Counts(15, 5, 10)
    a, notes = build(load_class_map("da9"), sources, counts, seed=3)
    assert not notes["test_drawn_from_train"]
    assert a["train"].class_names == sorted(CLASS_MAPS["da9"])
    for name, want in (("train", 15), ("val", 5), ("test", 10)):
        assert np.bincount(a[name].labels, minlength=9).tolist() == [want] * 9
    train_keys = set(zip(a["train"].source, a["train"].source_index, strict=True))
    val_keys = set(zip(a["val"].source, a["val"].source_index, strict=True))
    assert len(train_keys) == len(a["train"]) and not train_keys & val_keys
    assert set(a["test"].source) == {"cifar10:test", "cifar100:test"}
    # person takes an equal share from each of its five CIFAR-100 classes
    person = a["train"].class_names.index("person")
    got = sorted(a["train"].source_label[a["train"].labels == person].tolist())
    assert got == sorted(["baby", "boy", "girl", "man", "woman"] * 3)
    b, _ = build(load_class_map("da9"), sources, counts, seed=3)
    c, _ = build(load_class_map("da9"), sources, counts, seed=4)
    np.testing.assert_array_equal(a["train"].source_index, b["train"].source_index)
    assert not np.array_equal(a["train"].source_index, c["train"].source_index)


def test_too_few_images_is_a_clear_error(releases):
    sources = {"cifar10": load_cifar(releases, "cifar10")}
    with pytest.raises(ValueError, match="airplane: cifar10 train has 24 'airplane' images, 30 needed"):
        build(load_class_map("c10-da4"), sources, Counts(25, 5, 5), seed=0)
    with pytest.raises(ValueError, match="needs cifar100"):
        build(load_class_map("da4"), sources, Counts(5, 1, 1), seed=0)


def test_class_map_file_and_aliases(tmp_path):
    assert canonical("Aeroplane") == "airplane" and canonical("automobile") == "car"
    assert canonical("motor-bike") == "motor_bike" and canonical("Motorbike") == "motorcycle"
    # ShapeNetCore's synset folders, and the per-class tables they then reach (no shadow under an airplane)
    assert canonical("02958343") == "car" and canonical("04530566") == "ship" and canonical("04256520") == "sofa"
    from renderer.variations import SHADOW_BY_CLASS, class_key
    assert SHADOW_BY_CLASS[class_key("02691156")] == (0.0, 0.0)
    f = tmp_path / "map.toml"
    f.write_text('aeroplane = ["cifar10:airplane"]\nship = "cifar10:ship"\n')
    assert load_class_map(f) == {"airplane": ["cifar10:airplane"], "ship": ["cifar10:ship"]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"car": ["imagenet:car"]}))
    with pytest.raises(ValueError, match="not 'cifar10:label'"):
        load_class_map(bad)


def test_cli_builds_c10_da4_from_the_shared_subset(tmp_path):
    npz = require_data("cifar", "cifar10-train-subset.npz")
    out = tmp_path / "da"
    result = CliRunner().invoke(main, ["data", "cifar-da", "--variant", "c10-da4", "--cifar10", str(npz),
                                       "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "train 2000, val 200, test 200" in result.output
    splits = {s: load_split(out, s) for s in ("train", "val", "test")}
    assert splits["train"].class_names == ["airplane", "car", "horse", "truck"]
    for s, want in (("train", 500), ("val", 50), ("test", 50)):
        assert np.bincount(splits[s].labels).tolist() == [want] * 4
    keys = [set(splits[s].source_index.tolist()) for s in splits]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    info = json.loads((out / "dataset.json").read_text())
    assert len(info["test_drawn_from_train"]) == 4 and (out / "preview.png").is_file()
    # the images are the real CIFAR pixels at the recorded indices
    with np.load(npz) as d:
        np.testing.assert_array_equal(d["images"][splits["val"].source_index], splits["val"].images)


def test_cli_errors_are_one_line(tmp_path, releases):
    r = CliRunner().invoke(main, ["data", "cifar-da", "--variant", "da9", "--cifar10", str(releases),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "needs cifar100" in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "fake").mkdir()
    r = CliRunner().invoke(main, ["data", "cifar-da", "--cifar10", str(tmp_path / "fake"),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no cifar10 release found" in r.output
