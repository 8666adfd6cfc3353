"""Render settings as TOML: the defaults round-trip, every bad value is one line naming file and key, the
command line overrides the file, and a file gives the same render.json as the same settings as options."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from renderer import RenderConfig
from renderer.config_file import ConfigError, load_config, to_toml


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_config_show_loads_back_unchanged(tmp_path):
    r = _run("config", "show")
    assert r.exit_code == 0 and "[camera]" in r.output and "[camera.elevation_by_class]" in r.output
    (tmp_path / "c.toml").write_text(r.output)
    assert load_config(tmp_path / "c.toml") == RenderConfig()
    changed = RenderConfig(size=32, seed=7)
    (tmp_path / "d.toml").write_text(to_toml(changed))
    assert load_config(tmp_path / "d.toml") == changed


@pytest.mark.parametrize("text, message", [
    ("[camera]\nelevaton = [1, 2]", "unknown key [camera] elevaton (did you mean elevation?)"),
    ("[background.scenes_by_class]\ncar = [\"moon\"]", "background.scenes_by_class['car']: unknown scene kinds"),
    ("[camra]\nroll = [1, 2]", "unknown section camra (did you mean camera?)"),
    ("sise = 32", "unknown key sise (did you mean size?)"),
    ("[camera]\nelevation = [30, 5]", "[camera] elevation: the low end 30 is above the high end 5"),
    ("[texture]\nmode_weights = [1, -1, 0, 0]", "[texture] mode_weights: a weight is negative"),
    ("[texture]\nmode_weights = [0, 0, 0, 0]", "[texture] mode_weights: the weights must not all be 0"),
    ("[background]\nimage_dir = \"no-such-folder\"", "[background] image_dir: no such folder"),
    ("size = \"big\"", "size: expected a whole number"),
    ("[sensor]\njpeg_probability = true", "[sensor] jpeg_probability: expected a number"),
    ("[camera.elevation_by_class]\ncar = [20, 10]", "[camera] elevation_by_class.car: the low end 20"),
    ("x = [", "not valid TOML"),
])
def test_bad_files_give_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    r = _run("render", "--config", path, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1


def test_a_file_renders_what_the_same_options_render(default_models, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("size = 32\nseed = 4\nsupersample = 1\n[texture]\nenabled = false\n"
                   "[camera]\nelevation = [0, 20]\n")
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run("render", "--models", default_models, "--config", cfg, "--per-model", "1", "--out", a,
                "--quiet").exit_code == 0
    # the same on the command line: variations without texture; the camera range has no option, so the
    # file's camera section is given with the defaults for the rest
    cfg2 = tmp_path / "only-camera.toml"
    cfg2.write_text("[camera]\nelevation = [0, 20]\n")
    assert _run("render", "--models", default_models, "--config", cfg2, "--size", "32", "--seed", "4",
                "--supersample", "1", "--variations", "lighting,background,camera,occlusion,augment2d,sensor",
                "--per-model", "1", "--out", b, "--quiet").exit_code == 0

    def settings(out):
        return {k: v for k, v in json.loads((out / "render.json").read_text()).items() if k != "rendered_on"}

    assert settings(a) == settings(b)
    assert settings(a)["variations"]["camera"]["elevation"] == [0.0, 20.0]
    assert (a / "car" / "car_0_0.png").read_bytes() == (b / "car" / "car_0_0.png").read_bytes()
    # the command line wins over the file, and a changed config does not mix into an existing output
    r = _run("render", "--models", default_models, "--config", cfg, "--size", "24", "--per-model", "1", "--out", a,
             "--quiet")
    assert r.exit_code == 1 and "other settings (size)" in r.output


def test_the_readme_example_loads(tmp_path):
    """The TOML shown in the README is a working file: every key it names exists and every value passes."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    text = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "textures").mkdir()
    (tmp_path / "photos").mkdir()
    (tmp_path / "ex.toml").write_text(text)
    cfg = load_config(tmp_path / "ex.toml")
    v = cfg.variations
    assert v.camera.elevation_for("car") == (0, 15) and not v.occlusion.enabled
    assert v.background.image_dir == tmp_path / "photos" and v.lighting.temperature == (5000, 6500)
