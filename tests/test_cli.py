"""`mixreal render` and `mixreal preview` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from tests.conftest import REPO, full_disk, manifest_models, require_data


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_render_writes_images_and_manifest(default_models, tmp_path):
    out = tmp_path / "out"
    result = _run("render", "--models", str(default_models), "--per-model", "3", "--size", "32",
                  "--out", str(out), "--quiet", "--seed", "5")
    assert result.exit_code == 0, result.output
    files = _files(out)
    assert len(files) == 27 * 3
    assert "car/car_0_2.png" in files
    assert Image.open(out / "car" / "car_0_2.png").size == (32, 32)
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == len(files)
    e = next(e for e in entries if e["path"] == "car/car_0_2.png")
    assert e["class"] == "car" and e["model"] == "car/car_0" and e["index"] == 2 and e["seed"] == 5
    for group in ("texture", "lighting", "background", "camera", "occluders", "augment2d"):
        assert group in e["params"]
    assert "81 images rendered" in result.output


def test_rerun_resumes_and_changed_settings_are_refused(default_models, tmp_path):
    out = tmp_path / "out"
    def args(per_model: int = 2) -> list[str]:
        return ["render", "--models", str(default_models), "--per-model", str(per_model), "--size", "32",
                "--out", str(out), "--quiet"]

    assert _run(*args()).exit_code == 0
    first = _files(out)
    (out / "car" / "car_1_1.png").unlink()
    again = _run(*args())
    assert "1 images rendered, 53 already there" in again.output
    assert _files(out) == first
    bigger = _run(*args(4))  # a larger --per-model extends the same set
    assert bigger.exit_code == 0 and "54 images rendered, 54 already there" in bigger.output
    other = CliRunner().invoke(main, [*args(), "--seed", "9"])
    assert other.exit_code != 0
    assert "other settings (seed)" in other.output and len(other.output.strip().splitlines()) == 1
    # a folder started before a setting existed (its render.json lacks it) resumes while the setting keeps
    # its default, and is refused once it is changed
    settings = json.loads((out / "render.json").read_text())
    del settings["variations"]["lighting"]["ground"]
    (out / "render.json").write_text(json.dumps(settings))
    assert "0 images rendered" in _run(*args(4)).output
    (tmp_path / "hemi.toml").write_text("[lighting]\nground = [0.3, 0.6]\n")
    changed = _run(*args(4), "--config", tmp_path / "hemi.toml")
    assert changed.exit_code != 0 and "other settings (variations)" in changed.output


RENDER_CLASSES, RENDER_PER_MODEL = ("car", "truck", "horse"), 40


def _render_args() -> list[str]:
    """A render that takes a few seconds, run as a separate process (killed and interrupted below)."""
    return [sys.executable, "-m", "cli", "render", "--models", str(require_data("meshes")), "--classes",
            ",".join(RENDER_CLASSES), "--per-model", str(RENDER_PER_MODEL), "--size", "48", "--batch-size", "32",
            "--quiet"]


def _render_total() -> int:
    return sum(manifest_models(*RENDER_CLASSES).values()) * RENDER_PER_MODEL


@pytest.fixture(scope="module")
def clean_render(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    subprocess.run([*_render_args(), "--out", str(out)], check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                   cwd=REPO)
    return out


def test_killed_render_resumes_to_identical_files(clean_render, tmp_path):
    """SIGKILL in the middle of a render, then the same command: same files as one clean run."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = _render_args()
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=env, cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.rglob("*.png"))) < 60:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(killed.rglob("*.png")))
    assert 0 < partial < _render_total(), "the kill should land mid-render"
    subprocess.run([*args, "--out", str(killed)], check=True, env=env, cwd=REPO)
    assert _files(killed) == _files(clean_render)
    assert (killed / "manifest.jsonl").read_text() == (clean_render / "manifest.jsonl").read_text()
    assert not list(killed.rglob("*.tmp"))


def test_bad_models_are_skipped_and_the_render_goes_on(tmp_path):
    bad = require_data("bad-meshes")
    result = CliRunner().invoke(main, ["render", "--models", str(bad), "--per-model", "2", "--size", "32",
                                       "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 images rendered" in result.output and "4 files skipped" in result.output
    for name in ("empty.obj", "truncated.glb", "garbage.ply", "kenney_sedan_meshopt.glb"):
        assert sum(name in line and line.startswith("skipped") for line in result.output.splitlines()) == 1
    assert (tmp_path / "o" / "car" / "missing_texture_1.png").is_file()


def test_empty_or_missing_models_folder_fails_cleanly(tmp_path):
    (tmp_path / "models" / "car").mkdir(parents=True)
    result = CliRunner().invoke(main, ["render", "--models", str(tmp_path / "models"), "--out",
                                       str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "no loadable model" in lines[0]
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["render", "--variations", "texture,glitter", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "unknown variation glitter" in bad.output


def test_preview_has_a_row_per_variation(default_models, tmp_path):
    out = tmp_path / "grid.png"
    result = _run("preview", "--models", str(default_models), "--size", "48", "--per-row", "5", "--out", str(out))
    assert result.exit_code == 0, result.output
    im = Image.open(out)
    # label column + 5 images; a row for none, one per variation, and one for all, under a header
    from renderer import VARIATION_NAMES

    assert im.size == (110 + 5 * 50, (len(VARIATION_NAMES) + 2) * 50 + 18)


@pytest.mark.parametrize("cmd", ["render", "preview"])
def test_help(cmd):
    assert "--models" in _run(cmd, "--help").output


def test_workers_and_shards_give_the_same_dataset(default_models, tmp_path):
    base = ["render", "--models", str(default_models), "--per-model", "3", "--size", "32", "--batch-size", "16",
            "--quiet"]
    one, two, sharded = tmp_path / "one", tmp_path / "two", tmp_path / "sharded"
    assert _run(*base, "--out", str(one)).exit_code == 0
    r = _run(*base, "--out", str(two), "--workers", "2")
    assert r.exit_code == 0 and "81 images rendered" in r.output
    assert _files(two) == _files(one)
    assert (two / "manifest.jsonl").read_text() == (one / "manifest.jsonl").read_text()
    # two machines, one shard each, into a shared folder; then one plain run merges the manifests
    first = _run(*base, "--out", str(sharded), "--shard", "0/2")
    second = _run(*base, "--out", str(sharded), "--shard", "1/2")
    assert first.exit_code == 0 and second.exit_code == 0
    n0, n1 = (int(x.output.split()[0]) for x in (first, second))
    assert n0 + n1 == 81 and n0 > 0 and n1 > 0
    assert len(list(sharded.glob("manifest.shard-*.jsonl"))) == 2
    merged = _run(*base, "--out", str(sharded))
    assert "0 images rendered, 81 already there" in merged.output
    assert _files(sharded) == _files(one)
    assert (sharded / "manifest.jsonl").read_text() == (one / "manifest.jsonl").read_text()
    assert not list(sharded.glob("manifest.shard-*.jsonl"))
    bad = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "x"), "--shard", "2/2"])
    assert bad.exit_code == 2 and "0 <= K < N" in bad.output


def test_merging_keeps_each_listed_image_once_in_order_and_drops_torn_lines(tmp_path):
    from renderer.export import merge_manifests

    def entry(cls, model, index, model_file="m.obj"):
        path = f"{cls}/{model}_{index}.png"
        (tmp_path / cls).mkdir(exist_ok=True)
        (tmp_path / path).write_bytes(b"")
        return {"path": path, "class": cls, "model": model, "model_file": model_file, "seed": 0, "index": index,
                "params": {"camera": {"azimuth": 0.5}, "occluders": []}}

    odd = entry("car", 'a "quoted"\\name', 2, model_file='C:\\models\\"x".obj')  # escapes in the head
    entries = [entry("truck", "t", 10), entry("car", "b", 1), odd, entry("car", "b", 0), entry("car", "b", 11)]
    lost = entry("car", "b", 7)
    (tmp_path / lost["path"]).unlink()  # listed, but its image is gone
    lines = [json.dumps(e) + "\n" for e in entries]
    (tmp_path / "manifest.jsonl").write_text(lines[0] + lines[1])
    (tmp_path / "manifest.shard-0-of-2.jsonl").write_text(lines[2] + lines[1] + json.dumps(lost) + "\n")
    (tmp_path / "manifest.shard-1-of-2.jsonl").write_text(lines[3] + "\n" + lines[4][:-40])  # torn by a kill
    assert merge_manifests(tmp_path, remove_shards=True) == 4
    expected = sorted(entries[:4], key=lambda e: (e["class"], e["model"], e["index"]))
    assert (tmp_path / "manifest.jsonl").read_text() == "".join(json.dumps(e) + "\n" for e in expected)
    assert not list(tmp_path.glob("manifest.shard-*"))


def test_per_class_renders_a_class_balanced_set_from_unbalanced_models(tmp_path):
    """The shared meshes have many more cars than trucks (manifest.csv): --per-class still gives each class the
    same count, shared evenly by its models, and runs with --workers give the same files."""
    models = require_data("meshes")
    n_models = manifest_models("car", "truck")
    assert n_models["car"] > n_models["truck"]
    per_class_n = n_models["car"] + 3  # more images than cars: every car gets 1 or 2
    counts = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        r = _run("render", "--models", str(models), "--classes", "car,truck", "--per-class", str(per_class_n),
                 "--size", "32", "--workers", str(workers), "--out", str(out), "--quiet")
        assert r.exit_code == 0, r.output
        entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        per_class = {c: [e for e in entries if e["class"] == c] for c in ("car", "truck")}
        assert {c: len(v) for c, v in per_class.items()} == {"car": per_class_n, "truck": per_class_n}
        per_model = {}
        for e in per_class["car"]:
            per_model[e["model"]] = per_model.get(e["model"], 0) + 1
        assert len(per_model) == n_models["car"] and set(per_model.values()) == {1, 2}  # evenly
        counts[workers] = _files(out)
    assert counts[1] == counts[2]
    both = _run("render", "--per-model", "2", "--per-class", "2", "--out", str(tmp_path / "x"))
    assert both.exit_code != 0 and "not both" in both.output


def test_models_command_names_synset_folders_and_lists_what_it_skips(tmp_path):
    import trimesh

    root = tmp_path / "ShapeNetCore.v2"
    for synset, n in (("02958343", 3), ("02691156", 1)):
        for k in range(n):
            folder = root / synset / f"model{k}" / "models"
            folder.mkdir(parents=True)
            trimesh.creation.icosphere(subdivisions=k + 1).export(folder / "model_normalized.obj")
    (root / "02958343" / "broken.glb").write_bytes(b"glTF" + bytes(30))
    result = _run("models", "--models", str(root))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:4]}
    assert rows["car"][1] == "3" and rows["car"][-1] == "02958343"
    assert rows["airplane"][1] == "1" and rows["airplane"][2] == "80"  # an icosphere of subdivision 1
    assert "skipped" in result.output and "broken.glb" in result.output
    report = json.loads(_run("models", "--models", str(root), "--json", "--classes", "car").output)
    assert [c["class"] for c in report["classes"]] == ["car"] and report["classes"][0]["faces_max"] == 1280
    assert [Path(s["path"]).name for s in report["skipped"]] == ["broken.glb"]
    bad = _run("models", "--models", str(root), "--classes", "car,truk")
    assert bad.exit_code == 1 and "no class truk in models folder (it has airplane, car)" in bad.output


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temp(default_models, tmp_path, monkeypatch):
    full_disk(monkeypatch)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "1", "--out", str(out),
                                  "--quiet"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip() == f"Error: {out / 'render.json'}: No space left on device"
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setenv("MIXREAL_TRACEBACK", "1")  # for debugging: the error itself
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "1", "--out", str(out),
                                  "--quiet"])
    assert isinstance(r.exception, OSError) and r.exception.filename == str(out / "render.json")


def _busy_worker(q, stop) -> None:
    """A stand-in render worker: reports progress until asked to stop, as _worker does between batches."""
    while not stop.is_set():
        for _ in range(50):  # more than a pipe holds: only a parent that drains lets it exit
            q.put(("progress", "x" * 1000))
        time.sleep(0.01)
    q.put(("stopped",))


def test_other_workers_stop_cleanly_when_one_fails():
    import multiprocessing as mp

    from renderer.parallel import _stop_workers

    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_busy_worker, args=(q, stop), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    start = time.perf_counter()
    _stop_workers(procs, q, stop, grace=30.0)
    for p in procs:
        p.join(timeout=5)
    assert [p.exitcode for p in procs] == [0, 0]  # exited on their own, not terminated (-15)
    assert time.perf_counter() - start < 20


def test_ctrl_c_stops_every_worker_cleanly_and_the_run_resumes(clean_render, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a 2-worker render: the workers
    finish the files they are writing and exit, nothing half-written or leaked is left, and a plain run then
    completes the same files as a clean run."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*_render_args(), "--workers", "2"]
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([*args, "--out", str(stopped)], env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(stopped.rglob("*.png"))) < 60:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 1 and "Aborted!" in output, output
    assert "leaked" not in output and "Traceback" not in output, output
    assert not list(stopped.rglob("*.tmp"))
    partial = len(list(stopped.rglob("*.png")))
    assert 0 < partial < _render_total(), "the interrupt should land mid-render"
    subprocess.run([*_render_args(), "--out", str(stopped)], check=True, env=env, cwd=REPO)  # one process resumes
    assert _files(stopped) == _files(clean_render)
    assert (stopped / "manifest.jsonl").read_text() == (clean_render / "manifest.jsonl").read_text()
