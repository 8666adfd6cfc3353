"""CUDA ordinal -> EGL device, against fake device lists (the real query runs on whatever EGL is here)."""

from __future__ import annotations

import json

import pytest

from renderer.devices import EglDevice, egl_devices, egl_index_for

NV = "EGL_NV_device_cuda EGL_EXT_device_drm"
# four GPUs whose EGL order differs from CUDA's, and Mesa's software device last
MACHINE = [EglDevice(0, 2, NV), EglDevice(1, 0, NV), EglDevice(2, 3, NV), EglDevice(3, 1, NV),
           EglDevice(4, None, "EGL_MESA_device_software")]


def test_every_cuda_ordinal_lands_on_its_own_gpu():
    assert [egl_index_for(k, MACHINE, None)[0] for k in range(4)] == [1, 3, 0, 2]


def test_cuda_visible_devices_is_respected():
    # a process that sees only physical GPU 3: its CUDA device 0 is EGL device 2, not EGL device 0
    index, how = egl_index_for(0, MACHINE, [3])
    assert index == 2 and "physical 3" in how
    assert egl_index_for(1, MACHINE, [3, 0])[0] == 1
    with pytest.raises(ValueError, match="sees 1 GPU"):
        egl_index_for(1, MACHINE, [3])


def test_a_gpu_egl_does_not_know_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="no EGL device is physical CUDA GPU 7"):
        egl_index_for(0, MACHINE, [7])


def test_without_the_extension_the_egl_index_is_used_with_a_warning():
    mesa = [EglDevice(0, None, "EGL_MESA_device_software"), EglDevice(1, None, "EGL_EXT_device_drm")]
    warnings: list[str] = []
    assert egl_index_for(1, mesa, None, warnings.append)[0] == 1
    assert len(warnings) == 1 and "EGL_NV_device_cuda" in warnings[0] and "\n" not in warnings[0]
    quiet: list[str] = []
    assert egl_index_for(0, mesa[:1], None, quiet.append)[0] == 0 and not quiet  # one device: nothing to confuse


def test_the_query_and_the_record_in_render_json(default_models, tmp_path):
    from click.testing import CliRunner

    from cli import main

    devices = egl_devices()
    assert devices and all(d.index == i for i, d in enumerate(devices))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "1", "--size", "16",
                                  "--device", "0", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    rendered_on = json.loads((out / "render.json").read_text())["rendered_on"]["0/1"]
    assert "EGL device 0" in rendered_on
    # the record is not a setting: the same job on another device resumes
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "1", "--size", "16",
                                  "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
