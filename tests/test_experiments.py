"""The paper-table commands: configurations, aggregation, resumable runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import require_data
from train.config import preset
from train.experiments import TABLE1, TABLE2, aggregate, load_paper_values, slug


def test_tables_have_the_papers_configurations():
    assert [s.ratio for s in TABLE2[:8]] == ["1:0", "1:1", "1:7", "1:15"] * 2
    assert [s.augment for s in TABLE2[:8]] == [False] * 4 + [True] * 4
    longer = TABLE2[8:11]  # the longer real-only baselines: 4x (plain, augmented) and as many steps as 1:15
    assert all(s.ratio == "1:0" for s in longer) and [s.epochs_factor for s in longer] == [4, 4, 16]
    from train.config import epoch_batches

    def steps(spec) -> int:
        cfg = preset("resnet20", "quick", real_only=spec.ratio == "1:0", ratio=spec.ratio,
                     epochs_factor=spec.epochs_factor)
        return cfg.epochs * epoch_batches(cfg, 2000)

    assert abs(steps(longer[2]) - steps(TABLE2[3])) <= 0.03 * steps(TABLE2[3])  # "trained as long" as 1:15
    assert [s.name for s in TABLE2 if s.backgrounds] == ["real + synthetic 1:15, real-photo backgrounds"]
    equal = [s for s in TABLE2 if "the steps of 1:15" in s.name]
    assert len(equal) == 3 and all(abs(steps(s) - steps(TABLE2[3])) <= 0.03 * steps(TABLE2[3]) for s in equal)
    assert TABLE1[0].ratio == "1:0" and all(s.ratio == "0:1" for s in TABLE1[1:])
    # each of the paper's rows of Table 1 adds exactly one variation to the row before; then the default
    # (all, occluders included) and the default with real-photo backgrounds
    paper_rows = [s for s in TABLE1[1:] if s.variations != "all"]
    assert [s.backgrounds for s in TABLE1[1:] if s.variations == "all"] == [None, "real-photo backgrounds"]
    added = [set(s.variations.split(",")) - {"none"} for s in paper_rows]
    assert [len(b - a) for a, b in zip(added, added[1:], strict=False)] == [1] * (len(added) - 1)


def test_quick_scale_gives_every_ratio_the_same_passes_over_the_real_set():
    paper_mixed, paper_real = preset("resnet20", "paper"), preset("resnet20", "paper", real_only=True)
    quick = {r: preset("resnet20", "quick", real_only=r == "1:0", ratio=r) for r in ("1:0", "1:1", "1:7", "1:15")}
    assert {c.epochs for c in quick.values()} == {paper_mixed.epochs // 50}
    # the schedule keeps the paper's shape: each milestone at the same fraction of training (to an epoch)
    for cfg, paper in [(quick["1:0"], paper_real)] + [(quick[r], paper_mixed) for r in ("1:1", "1:7", "1:15")]:
        for m, pm in zip(cfg.milestones, paper.milestones, strict=True):
            assert abs(m / cfg.epochs - pm / paper.epochs) <= 0.5 / cfg.epochs
    # an explicit epoch count wins and keeps milestones in proportion
    cfg = preset("resnet20", "quick", ratio="1:7", epochs=100)
    assert cfg.epochs == 100 and cfg.milestones == (44, 70)
    # a longer baseline: the scale's (or the explicit) epochs times the factor, milestones still in proportion
    assert preset("resnet20", "quick", ratio="1:7", epochs=100, epochs_factor=4).milestones == (177, 278)
    longer = preset("resnet20", "quick", real_only=True, epochs_factor=4)
    assert longer.epochs == 4 * quick["1:0"].epochs
    assert all(abs(m / longer.epochs - pm / paper_real.epochs) <= 0.5 / longer.epochs
               for m, pm in zip(longer.milestones, paper_real.milestones, strict=True))
    assert preset("resnet20", "paper", epochs_factor=2).milestones == tuple(2 * m for m in paper_mixed.milestones)
    assert preset("resnet20", "paper") == paper_mixed  # no factor: the paper's settings untouched


def test_aggregate_mean_std_and_paper_column():
    text = aggregate({"real only": [0.5, 0.6, 0.7], "real + synthetic 1:7": [], "real + synthetic 1:1": [0.8]},
                     {"real only": 61.5}, paper_label="paper: CIFAR-DA9")
    lines = text.splitlines()
    assert lines[0] == "Paper column: paper: CIFAR-DA9."
    assert lines[4] == "| real only | 60.00 ± 10.00 | n/a | 3 | n/a | n/a | n/a | n/a | n/a | 61.50 |"
    assert lines[5] == "| real + synthetic 1:7 | not run | n/a | 0 | n/a | n/a | n/a | n/a | n/a | n/a |"
    assert lines[6].startswith("| real + synthetic 1:1 | 80.00 ± — (one seed) | n/a | 1 |")  # not a zero spread


def test_aggregate_interval_fit_and_weakest_class():
    def run(acc, small, train, car):
        return {"test_at_best_val": {"n": 4000, "accuracy": acc, "paper_size": {"accuracy": small},
                                     "per_class": {"car": car, "horse": 0.9}},
                "final_train_acc": train, "fits_training_images": train >= 0.7}
    details = {"synthetic": [run(0.60, 0.55, 0.9, 0.3), run(0.62, 0.60, 0.6, 0.5)]}
    gaps = {"synthetic": {"kid": 0.0123, "accuracy": 0.5, "coverage": 0.6},
            "other": {"kid": 0.02, "accuracy": 0.4, "coverage": 0.2}, "third": {"kid": 0.05, "accuracy": 0.45,
                                                                               "coverage": 0.4}}
    text = aggregate({"synthetic": [0.60, 0.62], "other": [0.5], "third": [0.3]}, {}, details, gaps=gaps)
    line = text.splitlines()[4]
    # Wilson 95 % at 61 % of 4,000 images is about +-1.5 points
    assert line == ("| synthetic | 61.00 ± 1.41 | 59.5–62.5 (n=4000) | 2 | 57.50 | 1/2 (75% train) | car 40.0 | 1.23 "
                    "| 60.0 | n/a |")
    assert "Spearman) with test accuracy over the 3 synthetic rows: KID -1.00" in text
    assert "on the synthetic images +0.50" in text
    assert "coverage of the real classes +0.50." in text  # ranks 60 / 20 / 40 against 61 / 50 / 30


def test_wilson_interval():
    from train.stats import wilson

    lo, hi = wilson(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    # 200 test images cannot resolve 3 points; 4,000 can
    assert wilson(140, 200)[1] - wilson(140, 200)[0] > 0.12
    assert wilson(2800, 4000)[1] - wilson(2800, 4000)[0] < 0.03


def test_shipped_paper_figures_name_the_papers_dataset():
    from train.experiments import TABLES, shipped_paper_values

    values, label = shipped_paper_values("table1")
    assert values["+ camera"] == 83.0 and "VisDA" in label and "AlexNet" in label
    values, label = shipped_paper_values("table2")
    assert values["real + synthetic 1:15"] == 79.17 and "CIFAR-DA9" in label
    assert set(values) <= {s.name for s in TABLES["table2"]}


def test_paper_values_file_is_checked_against_the_table(tmp_path):
    path = tmp_path / "paper.json"
    path.write_text(json.dumps({"table2": {"c10-da4": {"real only": 61.5, "real + synthetic 1:15": 70}},
                                "table1": {"c10-da4": {"+ camera": 40.0}}}))
    assert load_paper_values(path, "table2", "c10-da4") == {"real only": 61.5, "real + synthetic 1:15": 70.0}
    assert load_paper_values(path, "table2", "da9") == {}  # no figures for that dataset: every row n/a
    path.write_text(json.dumps({"table2": {"c10-da4": {"real + synthetic 1:16": 70.0}}}))
    with pytest.raises(ValueError, match="no configuration 'real \\+ synthetic 1:16'"):
        load_paper_values(path, "table2", "c10-da4")
    path.write_text(json.dumps({"table2": {"c10-da4": {"real only": 0.615}}}) + "}")
    with pytest.raises(ValueError, match="paper.json: cannot read"):
        load_paper_values(path, "table2", "c10-da4")
    path.write_text(json.dumps({"table2": [61.5]}))
    with pytest.raises(ValueError, match="expected {table: {dataset"):
        load_paper_values(path, "table2", "c10-da4")
    path.write_text(json.dumps({"table2": {"c10-da4": {"real only": True}}}))
    with pytest.raises(ValueError, match="expected an accuracy in %"):
        load_paper_values(path, "table2", "c10-da4")
    path.write_text(json.dumps({"table2": {"c10-da4": {"real only": "61.5%"}}}))
    with pytest.raises(ValueError, match="expected an accuracy in %"):
        load_paper_values(path, "table2", "c10-da4")


def test_experiment_rejects_a_bad_paper_file_before_training(tmp_path):
    bad = tmp_path / "paper.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["experiment", "table2", "--paper", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "paper.json: cannot read the paper's values" in result.output
    assert not (tmp_path / "o").exists()  # nothing built or trained


def test_experiment_names_the_default_cifar_it_did_not_find(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXREAL_DATA", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(main, ["experiment", "table1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{tmp_path / 'nowhere' / 'cifar' / 'cifar10-train-subset.npz'}: no such file" in result.output
    assert "set MIXREAL_DATA" in result.output


def test_table1_runs_and_resumes(tmp_path):
    require_data("cifar", "cifar10-train-subset.npz")
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"table1": {"c10-da4": {"+ camera": 42.5}}}))
    args = ["experiment", "table1", "--counts", "8,4,60", "--epochs", "1", "--seeds", "3", "--workers", "0",
            "--gap-images", "32", "--quiet", "--paper", str(paper), "--out", str(tmp_path)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("seed 3:") == len(TABLE1)  # the real-photo background row included
    summary = json.loads((tmp_path / "table1" / "all-variations-real-photo-backgrounds" / "seed-3" /
                          "summary.json").read_text())
    assert summary["test_at_best_val"]["n"] == 4 * 60 and summary["test_at_best_val"]["paper_size"]["n"] == 4 * 50
    assert "fits_training_images" in summary
    table = (tmp_path / "table1" / "table.md").read_text()
    assert (tmp_path / "table1" / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(f"| {s.name} |" in table for s in TABLE1)
    assert [ln.split(" |")[0] for ln in table.splitlines() if ln.endswith("| 42.50 |")] == ["| + camera"]
    results = json.loads((tmp_path / "table1" / "results.json").read_text())
    assert all(len(v) == 1 and 0.0 <= v[0] <= 1.0 for v in results["test_acc_at_best_val"].values())
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "seed 3:" not in again.output  # finished runs are not run again
    assert (tmp_path / "table1" / "table.md").read_text() == table
    # another seed, one row: the meter's reading of the first sweep is kept, not measured again on other renders
    reading = (tmp_path / "table1" / "camera" / "gap.json").read_bytes()
    other = [a for a in args if a != "3"]
    other[other.index("--seeds") + 1:other.index("--seeds") + 1] = ["5", "--rows", "=+ camera"]
    more = CliRunner().invoke(main, other)
    assert more.exit_code == 0 and "| + camera | seed 5:" in more.output, more.output
    assert "gap |" not in more.output and (tmp_path / "table1" / "camera" / "gap.json").read_bytes() == reading
    # a reading taken in another feature network's space (retrained, another DATA) is not compared: measured again
    other_net = json.loads(reading)
    other_net["features_digest"], other_net["kid"] = "0123456789abcdef", -1.0
    (tmp_path / "table1" / "camera" / "gap.json").write_text(json.dumps(other_net))
    again = CliRunner().invoke(main, other)
    assert again.exit_code == 0 and "gap | + camera" in again.output, again.output
    assert (tmp_path / "table1" / "camera" / "gap.json").read_bytes() == reading
    # a row not run now shows its earlier reading only if it is comparable with the rows measured now
    stale = next(p for p in sorted((tmp_path / "table1").glob("*/gap.json")) if p.parent.name != "camera")
    name = next(s.name for s in TABLE1 if slug(s.name) == stale.parent.name)
    fresh = json.loads(stale.read_text())
    assert f"| {name} |" in (tmp_path / "table1" / "table.md").read_text()
    stale.write_text(json.dumps({**fresh, "features_digest": "0123456789abcdef", "kid": -1.0}))
    again = CliRunner().invoke(main, other)
    assert again.exit_code == 0 and f"gap | {name}: the reading in {stale}" in again.output, again.output
    row = next(ln for ln in (tmp_path / "table1" / "table.md").read_text().splitlines() if ln.startswith(f"| {name} |"))
    assert "-100.00" not in row and "| n/a |" in row
    stale.write_text(json.dumps(fresh))
    again = CliRunner().invoke(main, other)
    row = next(ln for ln in (tmp_path / "table1" / "table.md").read_text().splitlines() if ln.startswith(f"| {name} |"))
    assert "gap |" not in again.output and f"| {100 * fresh['kid']:.2f} |" in row


def test_realism_steps_end_at_the_default_and_candidates_sit_on_it():
    """The ablation's last cumulative step is today's default exactly; a candidate row is the default with
    its one change, so its row compares with the default's and nothing else."""
    from renderer import RenderConfig, VariationConfig
    from train.experiments import TABLES
    from train.realism import CANDIDATES, STEPS, step_config

    assert step_config(STEPS[-1][0]) == (VariationConfig(), RenderConfig().supersample)
    names = [spec.name for spec in TABLES["realism"]]
    for name, _ in CANDIDATES:
        v, ss = step_config(name)
        assert name in names and ss == RenderConfig().supersample and v != VariationConfig()
        changed = [f for f in VariationConfig.__dataclass_fields__ if getattr(v, f) != getattr(VariationConfig(), f)]
        assert len(changed) == 1
    with pytest.raises(ValueError, match="unknown realism step"):
        step_config("+ something else")


def test_rows_runs_only_the_rows_named(tmp_path):
    require_data("cifar", "cifar10-train-subset.npz")
    base = ["experiment", "table1", "--counts", "8,4,60", "--epochs", "1", "--seeds", "4", "--workers", "0",
            "--gap-images", "0", "--quiet", "--out", str(tmp_path)]
    none = CliRunner().invoke(main, [*base, "--rows", "no such row"])
    assert none.exit_code == 1 and "--rows no such row: no row of table1 matches" in none.output
    some = CliRunner().invoke(main, [*base, "--rows", "+ camera,TEXTURE"])
    assert some.exit_code == 0, some.output
    ran = [s.name for s in TABLE1 if f"| {s.name} | seed 4:" in some.output]
    assert ran and all("camera" in n or "texture" in n for n in ran)
    assert len(ran) == sum("+ camera" in s.name or "texture" in s.name.lower() for s in TABLE1)
    # the table lists every row; those not run yet have no figure
    table = (tmp_path / "table1" / "table.md").read_text()
    assert all(f"| {s.name} |" in table for s in TABLE1)
    more = CliRunner().invoke(main, [*base, "--rows", "+ background"])
    assert more.exit_code == 0 and "| + camera | seed 4:" not in more.output  # finished rows are not re-run
    results = json.loads((tmp_path / "table1" / "results.json").read_text())["test_acc_at_best_val"]
    assert len(results["+ camera"]) == 1 and len(results["+ background"]) == 1  # earlier rows kept in the table


def test_config_file_sets_every_synthetic_rows_ranges(tmp_path):
    require_data("cifar", "cifar10-train-subset.npz")
    config = tmp_path / "narrow.toml"
    config.write_text("size = 64\n[camera]\nelevation = [2.0, 3.0]\n[camera.elevation_by_class]\n"
                      "[lighting]\nenabled = false\n")
    base = ["experiment", "table1", "--counts", "8,4,60", "--epochs", "1", "--seeds", "1", "--workers", "0",
            "--gap-images", "0", "--quiet", "--rows", "+ camera", "--out", str(tmp_path / "out")]
    ran = CliRunner().invoke(main, [*base, "--config", str(config)])
    assert ran.exit_code == 0, ran.output
    summary = json.loads((tmp_path / "out" / "table1" / "camera" / "seed-1" / "summary.json").read_text())
    synthetic = summary["synthetic"]
    assert synthetic["kind"] == "stream" and synthetic["size"] == 32 and synthetic["seed"] == 1  # the run's own
    assert synthetic["variations"]["camera"]["elevation"] == [2.0, 3.0]  # the file's range
    # the row's switches win over the file's: "+ camera" has lighting on
    assert synthetic["variations"]["lighting"]["enabled"] is True
    assert synthetic["variations"]["occlusion"]["enabled"] is False
    recorded = json.loads((tmp_path / "out" / "table1" / "render.json").read_text())
    assert recorded["variations"]["camera"]["elevation"] == [2.0, 3.0]
    # another config into the same folder would put its runs beside these: refused in one line
    other = CliRunner().invoke(main, base)
    assert other.exit_code == 1 and "already holds a render made with other settings (variations)" in other.output
    assert "Traceback" not in other.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nelevaton = [0, 1]\n")
    refused = CliRunner().invoke(main, [*base, "--config", str(bad)])
    assert refused.exit_code == 1 and "elevaton" in refused.output and "elevation" in refused.output


def test_rows_can_name_one_row_exactly():
    """'=NAME' picks that row alone (a row name can be the start of others: 1:15 and '1:15, augmented'), and
    a comma followed by a space is part of a name."""
    from train.experiments import _picks, parse_rows

    texts = parse_rows("=real + synthetic 1:15,=real only, 4x epochs")
    assert texts == ["=real + synthetic 1:15", "=real only, 4x epochs"]
    picked = [s.name for s in TABLE2 if any(_picks(t, s.name) for t in texts)]
    assert picked == ["real + synthetic 1:15", "real only, 4x epochs"]
    substring = [s.name for s in TABLE2 if any(_picks(t, s.name) for t in parse_rows("1:15,4X EPOCHS"))]
    assert substring == [s.name for s in TABLE2 if "1:15" in s.name or "4x epochs" in s.name]


def test_the_fine_tuning_row_starts_from_table1s_run_of_its_seed(tmp_path):
    require_data("cifar", "cifar10-train-subset.npz")
    common = ["--counts", "8,4,20", "--epochs", "1", "--seeds", "3", "--workers", "0", "--gap-images", "0",
              "--quiet", "--out", str(tmp_path)]
    row = "=real only, 4x epochs, from synthetic-only pre-training"
    early = CliRunner().invoke(main, ["experiment", "table2", "--rows", row, *common])
    assert early.exit_code == 0, early.output
    pre_run = tmp_path / "table1" / "all-variations-default" / "seed-3"
    assert (f"table2 | real only, 4x epochs, from synthetic-only pre-training | seed 3: skipped until table1 "
            f"'all variations (default)' has finished in {pre_run} (mixreal experiment table1 --rows "
            "'=all variations (default)')") in early.output
    pre = CliRunner().invoke(main, ["experiment", "table1", "--rows", "=all variations (default)", *common])
    assert pre.exit_code == 0, pre.output
    tuned = CliRunner().invoke(main, ["experiment", "table2", "--rows", row, *common])
    assert tuned.exit_code == 0, tuned.output
    summary = json.loads((tmp_path / "table2" / "real-only-4x-epochs-from-synthetic-only-pre-training" / "seed-3"
                          / "summary.json").read_text())
    start = tmp_path / "table1" / "all-variations-default" / "seed-3" / "best.pt"
    assert summary["config"]["init"] == str(start.resolve()) and summary["config"]["ratio"] == "1:0"


def _summaries(out, table, row, accs, n=4000):
    from train.experiments import slug

    for seed, acc in enumerate(accs):
        run = out / table / slug(row) / f"seed-{seed}"
        run.mkdir(parents=True)
        per_class = {c: acc for c in ("airplane", "car", "horse", "truck")}
        (run / "summary.json").write_text(json.dumps({"test_acc_at_best_val": acc, "fits_training_images": True,
                                                     "test_at_best_val": {"n": n, "per_class": per_class}}))


def test_transfer_targets_take_the_best_mixed_row_of_any_schedule(tmp_path, capsys, monkeypatch):
    """Target 3 reads every real + synthetic mixed-batch row (1:3 for the steps of 1:15 included), needs as
    many seeds as the baseline, and exits 1 when the margin or the interval gap is missing."""
    import importlib.util

    script = Path(__file__).parents[1] / "benchmarks" / "transfer_targets.py"
    spec = importlib.util.spec_from_file_location("tt", script)
    tt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tt)
    _summaries(tmp_path, "table1", "all variations (default)", [0.69, 0.68, 0.67])
    _summaries(tmp_path, "table2", "real only, 4x epochs", [0.76, 0.73, 0.79])
    _summaries(tmp_path, "table2", "real + synthetic 1:15", [0.80, 0.78, 0.79])
    _summaries(tmp_path, "table2", "real + synthetic 1:1, 8x epochs (the steps of 1:15)", [0.99])  # 1 seed only
    monkeypatch.setattr("sys.argv", ["transfer_targets.py", str(tmp_path)])
    assert tt.main() == 1  # 1:15 is +3 points on average but the intervals overlap
    assert "not compared yet" in capsys.readouterr().out
    _summaries(tmp_path, "table2", "real + synthetic 1:3, 4x epochs (the steps of 1:15)", [0.84, 0.82, 0.84])
    assert tt.main() == 0
    assert "3. real + synthetic 1:3, 4x epochs" in capsys.readouterr().out
