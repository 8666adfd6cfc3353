"""`table3` end to end on a tiny scale: every GAN, pool and classifier row, the paper's figures beside ours."""

from __future__ import annotations

import json

import pytest

from train.table3 import TABLE3, run_table3


def test_table3_runs_every_row_and_resumes(tiny_real, default_models, tmp_path):
    tiny = {"iterations": 2, "pretrain_g": 1, "pretrain_d": 1, "batch_size": 8, "residual_blocks": 1,
            "gap_every": 0, "sample_every": 4, "compile": False}
    args = dict(epochs=1, progress=False, gap_images=32, gan_overrides=tiny, pool_images=96)
    logs: list[str] = []
    text = run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append, **args)
    for row in TABLE3:
        assert f"| {row.name} |" in text
    assert "| synthetic only: MrGAN-refined |" in text and "63.55" in text  # the paper's figure beside ours
    results = json.loads((tmp_path / "table3" / "results.json").read_text())["test_acc_at_best_val"]
    assert all(len(v) == 1 for v in results.values())
    gan = tmp_path / "table3" / "gan" / "seed-0"
    # one stage 1 for every mapping: the copies hold the same generators
    ref = (gan / "rr-rs" / "stage-1" / "generators.pt").read_bytes()
    assert (gan / "rr-s" / "stage-1" / "generators.pt").read_bytes() == ref
    # the no-GAN row's pool: the raw pool through the photo-statistics map the sweep fitted and kept
    import numpy as np
    import torch

    from train.colour_match import PhotoStats

    pools = tmp_path / "table3" / "pools" / "seed-0"
    raw, stats = (np.load(pools / f"{k}-96.npz")["images"] for k in ("raw", "stats"))
    assert np.array_equal(PhotoStats.load(pools / "stats.json").s2r(torch.from_numpy(raw)).numpy(), stats)
    chosen = json.loads((tmp_path / "table3" / "chosen_ratios.json").read_text())
    assert chosen["real + MrGAN r-rs"][0] in ("1:1", "1:7")
    # a fine-tuning row starts from its synthetic-only row's classifier of the seed, trains 4x the epochs, and
    # the MrGAN one fine-tunes on refined real images as its pre-training row tested on them
    from train.experiments import slug

    for row in (r for r in TABLE3 if r.init is not None):
        summary = json.loads((tmp_path / "table3" / slug(row.name) / "seed-0" / "summary.json").read_text())
        assert summary["config"]["init"] == str((tmp_path / "table3" / slug(row.init) / "seed-0" / "best.pt").resolve())
        assert summary["config"]["ratio"] == "1:0" and summary["epochs"] == 4
        assert summary["config"]["refine_real"] == ("table3 rr-rs seed 0" if row.refine_real else None)
    # a second call finds every run finished: nothing is trained again, no refiner or pool is even loaded
    import train.table3 as table3

    def untouched(*a, **k):
        raise AssertionError("a finished row recomputed its inputs")

    import train.report as report

    logs.clear()
    drawn: list = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(table3, "pool", untouched)
        mp.setattr(table3, "_refiner", untouched)
        mp.setattr(report, "plot_table", lambda path, *a, **k: drawn.append(path))
        again = run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append, **args)
    assert not any(m.startswith("table3 | ") and "ratio" in m for m in logs)
    assert again == text and len(drawn) == 1  # the chart drawn once for the seed's rows read back, not per row


def test_table3_rows_train_only_the_gans_they_need(tiny_real, default_models, tmp_path):
    tiny = {"iterations": 2, "pretrain_g": 1, "pretrain_d": 1, "batch_size": 8, "residual_blocks": 1,
            "gap_every": 0, "sample_every": 4, "compile": False}
    args = dict(epochs=1, progress=False, gap_images=32, gan_overrides=tiny, pool_images=96)
    logs: list[str] = []
    run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append,
               rows=["=synthetic only: CycleGAN-refined"], **args)
    gan = tmp_path / "table3" / "gan" / "seed-0"
    assert sorted(p.name for p in gan.iterdir()) == ["rr-rs"]  # the CycleGAN is rr-rs's stage 1, alone
    assert (gan / "rr-rs" / "stage-1" / "generators.pt").is_file()
    assert not (gan / "rr-rs" / "stage-2").exists()
    assert sum(m.startswith("table3 | ") and "ratio" in m for m in logs) == 1
    # another row later: the table shows both, the first one read back, not trained again
    logs.clear()
    text = run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append,
                      rows=["=real only"], **args)
    assert [m for m in logs if m.startswith("table3 | ")] == ["table3 | real only | seed 0 | ratio 1:0"]
    results = json.loads((tmp_path / "table3" / "results.json").read_text())["test_acc_at_best_val"]
    filled = {name for name, accs in results.items() if accs}
    assert filled == {"real only", "synthetic only: CycleGAN-refined"}
    assert "| synthetic only: CycleGAN-refined |" in text
    # a fine-tuning row picked alone brings its pre-training row with it, and no GAN
    logs.clear()
    run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append,
               rows=["fine-tuned on real from raw"], **args)
    assert [m for m in logs if m.startswith("table3 | ")] == [
        "table3 | synthetic only: no refinement | seed 0 | ratio 0:1",
        "table3 | fine-tuned on real from raw renders | seed 0 | ratio 1:0"]
    # a finished pre-training run whose checkpoint is gone: the fine-tuning row says so and is skipped
    import shutil

    (tmp_path / "table3" / "synthetic-only-no-refinement" / "seed-0" / "best.pt").unlink()
    shutil.rmtree(tmp_path / "table3" / "fine-tuned-on-real-from-raw-renders")
    logs.clear()
    run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], log=logs.append,
               rows=["fine-tuned on real from raw"], **args)
    assert [m for m in logs if m.startswith("table3 | ")] == [
        f"table3 | fine-tuned on real from raw renders | seed 0: skipped: table3 'synthetic only: no refinement' "
        f"finished without its best.pt in {tmp_path / 'table3' / 'synthetic-only-no-refinement' / 'seed-0'} "
        "(delete it, then mixreal experiment table3 --rows '=synthetic only: no refinement')"]
    with pytest.raises(ValueError, match="no row of table3 matches"):
        run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], rows=["nonsense"], **args)
    # another GAN recipe in the same folder would read this one's pools and rows as its own: refused
    other = dict(args, gan_overrides={**tiny, "identity_skip": False, "sample_every": 2})
    with pytest.raises(ValueError, match="identity_skip.*use another --out"):
        run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], rows=["=real only"], **other)
    # logging settings are not the recipe: they may change between calls
    run_table3("c10-da4", tiny_real, default_models, tmp_path, "quick", [0], rows=["=real only"],
               **dict(args, gan_overrides={**tiny, "sample_every": 2}))


def test_a_sweep_folder_holds_one_resolved_gan_recipe(tmp_path):
    from train.mrgan import mrgan_preset
    from train.table3 import check_gan_overrides

    folder = tmp_path / "table3"
    check_gan_overrides(folder, {}, "quick")
    saved = json.loads((folder / "gan.json").read_text())
    assert saved["overrides"] == {} and saved["recipe"]["lr_d"] == mrgan_preset("quick").cyclegan.lr_d
    # the preset's own value asked for explicitly is the same recipe; logging settings are no recipe at all
    check_gan_overrides(folder, {"lr_d": mrgan_preset("quick").cyclegan.lr_d, "sample_every": 7}, "quick")
    with pytest.raises(ValueError, match=r"lr_d 0\.0002 there, 1e-05 here.*use another --out"):
        check_gan_overrides(folder, {"lr_d": 1e-5}, "quick")
    with pytest.raises(ValueError, match="iterations"):
        check_gan_overrides(folder, {}, "paper")
    # which generators a stage hands on changes every refined pool: another recipe too
    with pytest.raises(ValueError, match="keep best there, last here"):
        check_gan_overrides(folder, {"keep": "last"}, "quick")
    # so does the gap meter's absence: quick's keep = "best" needs it, and falls back to "last" without it
    with pytest.raises(ValueError, match="keep best there, last here"):
        check_gan_overrides(folder, {"gap_every": 0}, "quick")
    with pytest.raises(ValueError, match="gap_every > 0"):  # asked for without the meter: refused
        check_gan_overrides(folder, {"gap_every": 0, "keep": "best"}, "quick")

    # the runs on disk say what was trained, whatever gan.json holds: a folder whose GANs ran with lr_d 1e-5
    # under a gan.json of the overrides alone (as session 14 wrote it) and an unchanged preset
    other = tmp_path / "other"
    run = other / "gan" / "seed-3" / "rr-rs"
    run.mkdir(parents=True)
    cfg = mrgan_preset("quick", seed=3, lr_d=1e-5).to_dict()
    (run / "mrgan.json").write_text(json.dumps({"config": cfg, "class_names": ["a", "b"], "stages_done": 1}))
    (other / "gan.json").write_text("{}\n")
    with pytest.raises(ValueError, match="lr_d"):
        check_gan_overrides(other, {}, "quick")
    check_gan_overrides(other, {"lr_d": 1e-5}, "quick")  # the seed differs per seed: not part of the recipe
    assert json.loads((other / "gan.json").read_text())["overrides"] == {"lr_d": 1e-5}  # upgraded

    # a gan.json of the overrides alone and no run yet: those overrides are the folder's
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "gan.json").write_text('{"lr_d": 1e-05}\n')
    with pytest.raises(ValueError, match="lr_d"):
        check_gan_overrides(legacy, {}, "quick")
    check_gan_overrides(legacy, {"lr_d": 1e-5}, "quick")
    (legacy / "gan.json").write_text('{"lr_d": ')  # cut off mid-write by something other than mixreal
    with pytest.raises(ValueError, match=r"gan\.json: not the sweep's GAN settings"):
        check_gan_overrides(legacy, {"lr_d": 1e-5}, "quick")


def test_a_sweep_of_the_recipe_file_resumes_under_the_quick_default(tmp_path):
    """Session 18's Table 3 folder trained its GANs with a recipe file (identity skip, lr_d 2e-4, keep best)
    that became quick's default: the same recipe, asked for either way, so the folder resumes with or without
    the file, and one of the appendix's networks is refused."""
    from train.table3 import check_gan_overrides

    old = {"iterations": 2000, "decay_start": 1000, "batch_size": 32, "lr_g": 0.0002, "lr_d": 0.0002, "beta1": 0.5,
           "g_updates": 1, "lambda_cycle": 10.0, "lambda_l1": 0.1, "pool_size": 50, "target_label": [0.7, 1.2],
           "source_label": [0.0, 0.3], "label_keep": 0.9, "pretrain_g": 0, "pretrain_d": 300, "keep": "best",
           "networks.filters": 32, "networks.residual_blocks": 3, "networks.discriminator": None,
           "networks.init_std": 0.02, "networks.norm_scale_mean": 1.0, "networks.identity_skip": True}
    folder = tmp_path / "table3"
    folder.mkdir()
    overrides = {"identity_skip": True, "keep": "best", "lr_d": 0.0002}
    (folder / "gan.json").write_text(json.dumps({"overrides": overrides, "recipe": old}))
    check_gan_overrides(folder, overrides, "quick")
    check_gan_overrides(folder, {}, "quick")
    with pytest.raises(ValueError, match="networks.identity_skip True there, False here"):
        check_gan_overrides(folder, {"identity_skip": False}, "quick")


def test_the_gans_kid_by_step_is_gathered_per_stage_and_seed_and_drawn(tmp_path):
    """gan_kid.png: what each GAN stage measured while training, seed by seed, the generators it kept starred;
    a stage still training has no star, a stage trained without the meter no line."""
    from PIL import Image

    from train.loop import save_checkpoint
    from train.report import plot_kid_panels, write_metrics
    from train.table3 import gan_gap_panels

    folder = tmp_path / "table3"

    def stage(seed: int, mapping: str, k: int, kids: list[float | None], kept: int | None) -> None:
        d = folder / "gan" / f"seed-{seed}" / mapping / f"stage-{k}"
        d.mkdir(parents=True)
        rows = [{"step": 10, "pretrain_d": 0.5}]  # a pre-training row: no KID
        rows += [{"step": 100 * (i + 1), "kid_to_real": 2.0, "kid_to_target": kid} for i, kid in enumerate(kids)
                 if kid is not None]
        write_metrics(d / "metrics.csv", rows)
        if kept is not None:
            save_checkpoint(d / "generators.pt", {"step": kept})

    stage(0, "rr-rs", 1, [1.5, 0.9, 0.4], kept=300)
    stage(0, "rr-rs", 2, [0.5, 0.2, 0.6], kept=200)  # keep = "best" cut back to step 200
    stage(10, "rr-rs", 1, [1.2, 0.7], kept=None)  # still training; seed 10 sorts after seed 0 as a number
    stage(0, "r-rs", 2, [], kept=400)  # trained with --gap-every 0: nothing to draw
    panels = gan_gap_panels(folder)
    assert list(panels) == ["stage 1: synthetic -> real", "stage 2 (rr-rs): refined syn. -> refined real"]
    assert list(panels["stage 1: synthetic -> real"]) == ["seed 0", "seed 10"]
    assert panels["stage 1: synthetic -> real"]["seed 10"] == {"steps": [100, 200], "kid": [1.2, 0.7], "kept": None}
    line = panels["stage 2 (rr-rs): refined syn. -> refined real"]["seed 0"]
    assert line["steps"] == [100, 200, 300] and line["kid"] == pytest.approx([0.5, 0.2, 0.6]) and line["kept"] == 200
    plot_kid_panels(tmp_path / "gan_kid.png", panels, "test")
    assert Image.open(tmp_path / "gan_kid.png").size[0] > Image.open(tmp_path / "gan_kid.png").size[1]
