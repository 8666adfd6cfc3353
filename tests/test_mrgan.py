"""MrGAN runs: stages chained by mapping, checkpoints that resume to the same weights, refusing foreign
files, and refining (on disk and on the fly) with a trained run. Tiny networks on 16 px images."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from train.cyclegan import CycleGanConfig
from train.datasets import RealDataset
from train.gan_networks import GanNetworks
from train.mrgan import (
    GENERATORS,
    MrGanConfig,
    Refiner,
    SyntheticBatches,
    finished_stages,
    format_gap_progress,
    gap_progress,
    load_gan_recipe,
    mrgan_preset,
    stage_sides,
    train_mrgan,
)

TINY = CycleGanConfig(networks=GanNetworks(filters=4, residual_blocks=1), batch_size=6, pool_size=4,
                      iterations=6, decay_start=3, g_updates=1, pretrain_g=2, pretrain_d=2, lr_g=2e-3)


class Tensors(torch.utils.data.Dataset):
    """A synthetic set as a map-style dataset (what a rendered folder gives)."""

    def __init__(self, images, labels, class_names):
        self.images, self.labels, self.class_names = images, labels, class_names

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def _data(n=24, size=16):
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(n) % 2
    real = (torch.rand(n, 3, size, size, generator=g) * 120).to(torch.uint8)
    real[labels == 1, :, : size // 2] += 100
    syn = real.clone()
    syn[:, 0] = syn[:, 0] // 2 + 120  # a redder synthetic domain
    names = ["car", "truck"]
    return RealDataset(real.permute(0, 2, 3, 1).numpy(), labels.numpy(), names), Tensors(syn, labels, names)


def _cfg(**kw) -> MrGanConfig:
    kw = {"gap_every": 0, **kw}
    return MrGanConfig(stages=2, mapping="rr-rs", image_size=16, cyclegan=TINY, checkpoint_every=3,
                       sample_every=5, log_every=2, device="cpu", **kw)


def test_mapping_sides():
    assert stage_sides("rr-s", 1) == ("s", "r")
    assert stage_sides("rr-rs", 2) == ("rs", "rr")
    assert stage_sides("r-rs", 3) == ("rs", "r")
    with pytest.raises(ValueError, match="unknown mapping"):
        MrGanConfig(mapping="rs-rr")


def test_presets_and_config_round_trip():
    quick, paper = mrgan_preset("quick"), mrgan_preset("paper")
    assert paper.cyclegan.iterations == 40_000 and paper.cyclegan.batch_size == 144
    assert paper.cyclegan.networks.residual_blocks == 9 and paper.cyclegan.g_updates == 5
    assert mrgan_preset("paper", image_size=256).cyclegan.batch_size == 32
    assert quick.cyclegan.iterations < paper.cyclegan.iterations
    short = mrgan_preset("quick", iterations=100)
    assert short.cyclegan.decay_start == 50  # the schedule keeps its shape
    slow_d = mrgan_preset("quick", lr_d=1e-5).cyclegan
    assert slow_d.lr_d == 1e-5 and slow_d.lr_g == quick.cyclegan.lr_g
    # quick's own recipe (README): identity-started generators, D at G's rate, the stage's best generators
    g = quick.cyclegan
    assert g.networks.identity_skip and g.networks.norm_scale_mean == 1.0 and g.pretrain_g == 0
    assert (g.lr_d, g.keep, quick.gap_every > 0) == (g.lr_g, "best", True)
    assert mrgan_preset("quick", gap_every=0).cyclegan.keep == "last"  # best is picked by the meter
    with pytest.raises(ValueError, match="gap_every > 0"):  # asked for without the meter: refused
        mrgan_preset("quick", gap_every=0, keep="best")
    # paper is the appendix as written
    p = paper.cyclegan
    assert not p.networks.identity_skip and p.networks.norm_scale_mean == 0.0
    assert (p.lr_d, p.keep, p.pretrain_g, p.pretrain_d) == (1e-5, "last", 1000, 500)
    # the README's appendix-at-quick-length recipe turns all three back: the appendix's networks and rates
    old = mrgan_preset("quick", identity_skip=False, lr_d=1e-5, keep="last").cyclegan
    assert old.networks == replace(p.networks, residual_blocks=3)
    assert (old.lr_d, old.keep, old.pretrain_g) == (p.lr_d, p.keep, 600)
    assert MrGanConfig.from_dict(quick.to_dict()) == quick


def test_every_key_of_a_gan_recipe_file_reaches_the_config(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text("iterations = 300\nbatch_size = 16\ng_updates = 2\npretrain_g = 0\npretrain_d = 7\n"
                    "lr_g = 1e-4\nlr_d = 3e-4\nresidual_blocks = 4\nidentity_skip = true\nnorm_scale_mean = 0.5\n")
    g = mrgan_preset("quick", **load_gan_recipe(path)).cyclegan
    assert (g.iterations, g.decay_start, g.batch_size, g.g_updates, g.pretrain_g, g.pretrain_d) == \
        (300, 150, 16, 2, 0, 7)
    assert (g.lr_g, g.lr_d) == (1e-4, 3e-4)
    assert (g.networks.residual_blocks, g.networks.identity_skip, g.networks.norm_scale_mean) == (4, True, 0.5)


def test_synthetic_batches_are_a_function_of_the_step():
    _, syn = _data()
    a, b = SyntheticBatches(syn, seed=3), SyntheticBatches(syn, seed=3)
    x1, y1 = a.batch(5, 6)
    a.batch(0, 6)
    x2, y2 = b.batch(5, 6)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # one pass over the set visits every image once
    seen = torch.cat([a.batch(t, 6)[0] for t in range(4)])
    assert len({bytes(im.numpy()) for im in seen}) == len({bytes(im.numpy()) for im in syn.images})


def test_two_stages_train_chain_and_refine(tmp_path):
    real, syn = _data()
    info = train_mrgan(_cfg(), real, syn, tmp_path / "run", progress=False, log=lambda m: None)
    assert info["stages_done"] == 2 and finished_stages(tmp_path / "run") == 2
    for k in (1, 2):
        stage = tmp_path / "run" / f"stage-{k}"
        assert (stage / "metrics.csv").is_file() and (stage / "losses.png").is_file()
        assert sorted(p.name for p in stage.glob("samples-*.png")) == ["samples-000005.png", "samples-000010.png"]
        from PIL import Image

        with Image.open(stage / "samples-000010.png") as sheet:  # 16 px at zoom 3, 5 columns (the last: the diff)
            assert sheet.size[0] == 190 + 5 * (16 * 3 + 2)
    ref = Refiner.load(tmp_path / "run")
    assert ref.stages == 2 and ref.moves_real()
    out = ref.s2r(syn.images[:5])
    assert out.dtype == torch.uint8 and out.shape == syn.images[:5].shape
    # rr-rs: stage 2 refines stage-1 refined synthetic images; the real side is stage-1 refined real
    g1, f1 = ref.generators[0]
    g2, _ = ref.generators[1]
    from train.cyclegan import to_signed, to_uint8

    with torch.no_grad():
        by_hand = to_uint8(g2(g1(to_signed(syn.images[:5]))))
        real_side = to_uint8(f1(to_signed(real.images[:5])))
        first = to_uint8(g1(to_signed(syn.images[:5])))
    assert torch.equal(out, by_hand)
    assert torch.equal(ref.real_domain(real.images[:5]), real_side)
    assert torch.equal(Refiner.load(tmp_path / "run", stage=1).s2r(syn.images[:5]), first)


def test_the_gap_measured_while_training_is_the_refiners_and_is_reported(tmp_path):
    """KID is logged after pre-training and every gap_every iterations; the last figure is the KID of what the
    saved generators make of the held-out renders, and the finished run reports each stage's progress."""
    from train.gap import FeatureNet, kid_fid
    from train.models import build_model

    real, syn = _data()
    torch.manual_seed(0)
    net = FeatureNet(build_model("resnet20", 2), list(real.class_names), 16, "test")
    cfg = _cfg(gap_every=3, gap_images=12)
    lines: list[str] = []
    info = train_mrgan(cfg, real, syn, tmp_path / "run", feature_net=net, progress=False, log=lines.append)
    from train.report import read_metrics

    pre = TINY.pretrain_g + TINY.pretrain_d
    for k in (1, 2):
        kid_rows = [r for r in read_metrics(tmp_path / "run" / f"stage-{k}" / "metrics.csv") if "kid_to_real" in r]
        assert [r["step"] for r in kid_rows] == [pre, pre + 3, pre + 6]
    s_u8, _ = SyntheticBatches(syn, TINY.seed).held_out(12)
    f_real, _ = net.features_and_logits(torch.as_tensor(real.images))
    for k in (1, 2):
        refined = Refiner.load(tmp_path / "run", stage=k).s2r(s_u8)
        by_hand = kid_fid(f_real, net.features_and_logits(refined)[0], subsets=20)[0]
        assert info["gap"][k - 1]["kid_to_real"] == pytest.approx(by_hand, rel=1e-5, abs=1e-8)  # metrics.csv: 6 digits
    raw = kid_fid(f_real, net.features_and_logits(s_u8)[0], subsets=20)[0]
    assert info["gap"][0]["kid_raw"] == pytest.approx(raw, rel=1e-5, abs=1e-8)
    assert info["gap"] == gap_progress(tmp_path / "run")
    assert [r["stage"] for r in info["gap"]] == [1, 2]
    assert info["gap"][0]["closed"] == pytest.approx(1 - info["gap"][0]["kid_to_real"] / info["gap"][0]["kid_raw"])
    report = format_gap_progress(info["gap"])
    assert len(report) == 2 and all(line in lines for line in report)
    assert "to its real side" in report[1] and "to its real side" not in report[0]
    assert json.loads((tmp_path / "run" / "mrgan.json").read_text())["gap"] == info["gap"]


def test_the_sample_sheets_difference_column_is_the_amplified_change():
    from train.cyclegan import to_uint8
    from train.mrgan import DIFF_GAIN, _amplified_difference

    a = torch.zeros(1, 3, 2, 2)
    b = a.clone()
    b[0, 0, 0, 0], b[0, 1, 1, 1], b[0, 2, 0, 1] = 0.1, -0.1, 1.0  # 12.75 levels, -12.75, 127.5 (clipped x gain)
    diff = to_uint8(_amplified_difference(a, b))
    assert diff[0, 0, 0, 0] == round(0.1 * DIFF_GAIN * 127.5) and diff[0, 1, 1, 1] == diff[0, 0, 0, 0]
    assert diff[0, 2, 0, 1] == 255 and diff[0, 0, 1, 1] == 0


@pytest.mark.parametrize("mapping", ["rr-rs", "r-rs", "rr-s"])
def test_the_sample_sheets_legend_names_the_chain_that_refines(mapping):
    from train.mrgan import Refiner, sheet_labels

    class Add(torch.nn.Module):  # stage j's G adds 10 ** j, its F subtracts it: the sum tells the chain
        def __init__(self, amount: float):
            super().__init__()
            self.amount = amount

        def forward(self, x):
            return x + self.amount

    k = 3
    gens = [(Add(10.0 ** j), Add(-(10.0 ** j))) for j in range(1, k + 1)]
    refiner = Refiner(gens, mapping)
    x = torch.zeros(1, 3, 2, 2)
    for stage in range(1, k + 1):
        legend = sheet_labels(mapping, stage)[0].split(" | ")
        chain = [int(j) for j in legend[-3].split(" > ")[1:]]  # the column stage k refined, from S
        assert chain[-1] == stage and legend[-2:] == ["cycle", "x4 diff"]
        refined = gens[stage - 1][0](refiner._signed_chain(x, stage, 0))
        assert refined.flatten()[0].item() == sum(10.0 ** j for j in chain)


def test_kill_and_resume_gives_the_same_weights(tmp_path, monkeypatch):
    import train.loop

    real, syn = _data()
    cfg = replace(_cfg(), stages=1)
    train_mrgan(cfg, real, syn, tmp_path / "whole", progress=False, log=lambda m: None)
    save = train.loop.save_checkpoint

    def killed_after_step_6(path, state):  # the process dies right after the step-6 checkpoint lands
        save(path, state)
        if state.get("step") == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.loop, "save_checkpoint", killed_after_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_mrgan(cfg, real, syn, tmp_path / "part", progress=False, log=lambda m: None)
    monkeypatch.setattr(train.loop, "save_checkpoint", save)
    assert not (tmp_path / "part" / "stage-1" / GENERATORS).exists()
    logs = []
    train_mrgan(cfg, real, syn, tmp_path / "part", progress=False, log=logs.append)
    assert any("resuming after step 6" in m for m in logs)
    a = torch.load(tmp_path / "whole" / "stage-1" / GENERATORS, weights_only=True)
    b = torch.load(tmp_path / "part" / "stage-1" / GENERATORS, weights_only=True)
    for key in ("g_sr", "g_rs"):
        for name, w in a[key].items():
            assert torch.equal(w, b[key][name]), f"{key}.{name} differs after resuming"


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    real, syn = _data()
    run = tmp_path / "run"
    train_mrgan(replace(_cfg(), stages=1), real, syn, run, progress=False, log=lambda m: None)
    gens = run / "stage-1" / GENERATORS
    torch.save({"model": {}}, gens)
    with pytest.raises(ValueError, match="not a mixreal MrGAN stage"):
        Refiner.load(run)
    gens.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(ValueError, match="unreadable checkpoint") as err:
        Refiner.load(run)
    assert "\n" not in str(err.value) and str(gens) in str(err.value)
    with pytest.raises(FileNotFoundError, match="not a MrGAN run"):
        Refiner.load(tmp_path)


def test_a_stage_saved_before_a_setting_existed_still_resumes(tmp_path):
    """Checkpoints written before `identity_skip` was added lack it; it takes its default, which is what ran."""
    real, syn = _data()
    run = tmp_path / "run"
    cfg = replace(_cfg(), stages=1)
    train_mrgan(cfg, real, syn, run, progress=False, log=lambda m: None)
    for name in (GENERATORS, "checkpoint.pt"):
        path = run / "stage-1" / name
        state = torch.load(path, weights_only=True)
        del state["config"]["cyclegan"]["networks"]["identity_skip"]
        torch.save(state, path)
    logs = []
    train_mrgan(cfg, real, syn, run, progress=False, log=logs.append)
    assert "stage 1: done already" in logs
    # another value of the setting is another stage: refused, not silently mixed
    skip = replace(cfg, cyclegan=replace(TINY, networks=replace(TINY.networks, identity_skip=True)))
    with pytest.raises(Exception, match="other settings"):
        train_mrgan(skip, real, syn, run, progress=False, log=lambda m: None)


def test_identity_skip_generators_train_and_refine(tmp_path):
    real, syn = _data()
    tiny = replace(TINY, pretrain_g=0, networks=replace(TINY.networks, identity_skip=True))
    cfg = replace(_cfg(), stages=1, cyclegan=tiny)
    train_mrgan(cfg, real, syn, tmp_path / "run", progress=False, log=lambda m: None)
    ref = Refiner.load(tmp_path / "run")
    assert ref.generators[0][0].identity_skip
    out = ref.s2r(syn.images[:6])
    moved = (out.float() - syn.images[:6].float()).abs().mean()
    assert 0 < moved < 60  # trained away from the identity it started as, and still near its input
    skip = mrgan_preset("paper", identity_skip=True).cyclegan
    assert skip.networks.identity_skip and skip.pretrain_g == 0 and skip.pretrain_d == 500
    assert skip.networks.norm_scale_mean == 1.0  # the appendix's ~0 scales leave a skipped generator frozen
    assert mrgan_preset("paper", identity_skip=True, pretrain_g=50).cyclegan.pretrain_g == 50
    # quick skips by default; without the skip it is the appendix's networks, pre-trained toward the identity
    plain = mrgan_preset("quick", identity_skip=False).cyclegan
    assert not plain.networks.identity_skip and plain.networks.norm_scale_mean == 0.0 and plain.pretrain_g == 600
    assert mrgan_preset("quick", identity_skip=False, pretrain_g=50).cyclegan.pretrain_g == 50


def _feature_net(real):
    from train.gap import FeatureNet
    from train.models import build_model

    torch.manual_seed(0)
    return FeatureNet(build_model("resnet20", 2), list(real.class_names), 16, "test")


def test_keep_best_hands_on_the_generators_of_the_lowest_kid_and_resumes(tmp_path, monkeypatch):
    """keep = "best": each stage hands on the generators of its lowest measured KID to its target (stage 1: the
    real images; stage 2 of rr-rs: stage-1 refined real), and a kill between measurements loses nothing."""
    import train.loop
    from train.gap import kid_fid
    from train.report import read_metrics

    real, syn = _data()
    net = _feature_net(real)
    # identity-skip generators start as the identity, which on these near-identical domains measures best:
    # stage 1 keeps an earlier step than its last
    tiny = replace(TINY, pretrain_g=0, networks=replace(TINY.networks, identity_skip=True))
    cfg = replace(_cfg(gap_every=3, gap_images=12), cyclegan=tiny)
    best_cfg = replace(cfg, cyclegan=replace(tiny, keep="best"))
    train_mrgan(cfg, real, syn, tmp_path / "last", feature_net=net, progress=False, log=lambda m: None)
    lines: list[str] = []
    info = train_mrgan(best_cfg, real, syn, tmp_path / "best", feature_net=net, progress=False, log=lines.append)
    s_u8, _ = SyntheticBatches(syn, TINY.seed).held_out(12)
    f_real, _ = net.features_and_logits(torch.as_tensor(real.images))
    total = tiny.pretrain_d + tiny.iterations
    for k in (1, 2):
        rows = [r for r in read_metrics(tmp_path / "best" / f"stage-{k}" / "metrics.csv") if "kid_to_target" in r]
        best = min(rows, key=lambda r: r["kid_to_target"])
        saved = torch.load(tmp_path / "best" / f"stage-{k}" / GENERATORS, weights_only=True)
        assert saved["step"] == best["step"]
        assert info["gap"][k - 1]["step"] == best["step"] and info["gap"][k - 1]["trained_to"] == total
        assert info["gap"][k - 1]["kid_to_target"] == pytest.approx(best["kid_to_target"])
        if k == 1:  # stage 1's target is the real images: the kept generators' KID, measured again by hand
            refined = Refiner.load(tmp_path / "best", stage=1).s2r(s_u8)
            by_hand = kid_fid(f_real, net.features_and_logits(refined)[0], subsets=20)[0]
            assert by_hand == pytest.approx(best["kid_to_target"], rel=1e-5, abs=1e-8)
            # keep changes what is handed on, not how the stage trains: its last weights are keep=last's
            last = torch.load(tmp_path / "last" / "stage-1" / GENERATORS, weights_only=True)
            ckpt = torch.load(tmp_path / "best" / "stage-1" / "checkpoint.pt", weights_only=True)
            assert all(torch.equal(w, ckpt["stage"]["g_sr"][n]) for n, w in last["g_sr"].items())
            assert best["step"] < total
            assert not all(torch.equal(w, saved["g_sr"][n]) for n, w in last["g_sr"].items())
            assert any(f"stage 1: keeping the generators of step {best['step']}" in m for m in lines)
            assert (tmp_path / "best" / "stage-1" / f"samples-kept-{best['step']:06d}.png").is_file()
            assert "(kept; trained to" in format_gap_progress(info["gap"])[0]
    # killed right after the step-6 checkpoint (best so far: step 2's), resumed: the same generators handed on
    save = train.loop.save_checkpoint

    def killed_after_step_6(path, state):
        save(path, state)
        if state.get("step") == 6 and path.name == "checkpoint.pt":
            raise KeyboardInterrupt

    one = replace(best_cfg, stages=1)
    monkeypatch.setattr(train.loop, "save_checkpoint", killed_after_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_mrgan(one, real, syn, tmp_path / "part", feature_net=net, progress=False, log=lambda m: None)
    monkeypatch.setattr(train.loop, "save_checkpoint", save)
    train_mrgan(one, real, syn, tmp_path / "part", feature_net=net, progress=False, log=lambda m: None)
    a = torch.load(tmp_path / "best" / "stage-1" / GENERATORS, weights_only=True)
    b = torch.load(tmp_path / "part" / "stage-1" / GENERATORS, weights_only=True)
    assert a["step"] == b["step"]
    assert all(torch.equal(w, b["g_sr"][n]) for n, w in a["g_sr"].items())


def test_keep_best_needs_the_gap_meter_and_a_known_value(tmp_path):
    real, syn = _data()
    with pytest.raises(ValueError, match="gap_every > 0"):
        MrGanConfig(stages=1, image_size=16, cyclegan=replace(TINY, keep="best"), gap_every=0)
    with pytest.raises(ValueError, match="one of last, best"):
        MrGanConfig(stages=1, image_size=16, cyclegan=replace(TINY, keep="first"))
    cfg = replace(_cfg(gap_every=3, gap_images=12), cyclegan=replace(TINY, keep="best"))
    with pytest.raises(ValueError, match="feature network"):
        train_mrgan(cfg, real, syn, tmp_path / "run", progress=False, log=lambda m: None)
    assert not (tmp_path / "run" / "stage-1").exists()  # refused before any work
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('keep = "best"\nlr_d = 2e-4\n')
    assert load_gan_recipe(recipe) == {"keep": "best", "lr_d": 2e-4}
    assert mrgan_preset("quick", **load_gan_recipe(recipe)).cyclegan.keep == "best"
    recipe.write_text('keep = "bestest"\n')
    with pytest.raises(ValueError, match="recipe.toml: keep = 'bestest': expected one of 'last', 'best'"):
        load_gan_recipe(recipe)
