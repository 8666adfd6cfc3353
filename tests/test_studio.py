"""`mixreal studio` at the API level (Starlette's test client): the controls come from the dataclasses, renders
match `mixreal render`, bad values and paths are refused, a non-local server needs its token."""

from __future__ import annotations

import base64
import io
from dataclasses import fields

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from renderer import ModelLibrary, RenderConfig, VariationConfig
from renderer.studio import Studio, create_app


@pytest.fixture(scope="module")
def studio(default_models, tmp_path_factory):
    s = Studio(ModelLibrary.load(default_models, on_skip=lambda m: None), default_models, RenderConfig(size=32),
               tmp_path_factory.mktemp("saved"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(studio):
    with TestClient(create_app(studio)) as c:
        yield c


def _grid(data):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image"].split(",", 1)[1]))).convert("RGB"))


def test_every_dataclass_field_has_a_control(client, studio):
    assert "<title>mixreal studio</title>" in client.get("/").text
    schema = client.get("/api/schema").json()
    shown = {s["name"]: {f["name"] for f in s["fields"]} for s in schema["sections"]}
    for f in fields(VariationConfig):
        assert shown[f.name] == {g.name for g in fields(getattr(VariationConfig(), f.name))}
    assert {f["name"] for f in schema["top"]} >= {"size", "supersample", "seed"}
    camera = next(s for s in schema["sections"] if s["name"] == "camera")["fields"]
    assert next(f for f in camera if f["name"] == "fill")["optional"]  # a range that can be switched off
    models = client.get("/api/models").json()
    assert len(models["models"]) == len(studio.library.models) and models["skipped"] == []
    thumb = client.get("/api/thumb/0")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (96, 96)


def test_the_grid_is_what_mixreal_render_writes(client, studio, default_models, tmp_path):
    from click.testing import CliRunner

    from cli import main

    settings = {"size": 32, "seed": 3, "camera": {"elevation": [0, 10], "elevation_by_class": {}}}
    d = client.post("/api/render", json={"settings": settings, "models": [0], "count": 4, "per_row": 4}).json()
    grid = _grid(d)
    assert grid.shape == (32, 128, 3) and len(d["cells"]) == 4
    assert all(0 <= c["params"]["camera"]["elevation"] <= 10 for c in d["cells"])
    assert d["histograms"]  # the sampled parameters of this grid
    # save -> the TOML `mixreal render --config` reads -> the same pixels
    saved = client.post("/api/save", json={"settings": settings, "name": "mine.toml"}).json()
    assert "mixreal render" in saved["command"] and "--config" in saved["command"]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--config", saved["path"],
                                  "--per-model", "4", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    m = studio.library.models[0]
    for i in range(4):
        png = np.asarray(Image.open(out / m.label / f"{m.ref.name}_{i}.png").convert("RGB"))
        assert np.array_equal(png, grid[:, 32 * i:32 * (i + 1)])
    # switching a variation off moves the pixels
    off = client.post("/api/render", json={"settings": {**settings, "background": {"enabled": False}},
                                           "models": [0], "count": 4, "per_row": 4}).json()
    assert not np.array_equal(_grid(off), grid)


@pytest.mark.parametrize("payload, message", [
    ({"settings": {"camera": {"elevation": [30, 5]}}}, "the low end 30 is above the high end 5"),
    ({"settings": {"camra": {}}}, "unknown section camra"),
    ({"settings": {}, "models": [999]}, "outside the loaded models"),
    ({"settings": {}, "count": 10_000}, "at most 256"),
    ({"settings": {"camera": {"fill": "off"}}}, "[camera] fill: expected a list"),
])
def test_bad_values_are_refused_with_the_message(client, payload, message):
    r = client.post("/api/render", json=payload)
    assert r.status_code == 400 and message in r.json()["error"]


def test_paths_and_sizes_are_bounded(client, studio):
    assert client.get("/api/thumb/99999").status_code == 404
    assert client.get("/api/thumb/..%2F..%2Fetc%2Fpasswd").status_code == 404
    r = client.post("/api/save", json={"settings": {}, "name": "../escape.toml"})
    assert r.status_code == 400 and not (studio.save_dir.parent / "escape.toml").exists()
    r = client.post("/api/render", content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "at most" in r.json()["error"]


def test_a_token_guards_a_studio_served_beyond_localhost(studio):
    with TestClient(create_app(studio, token="s3cret")) as c:
        assert c.get("/api/schema").status_code == 403
        assert c.get("/?token=wrong").status_code == 403
        page = c.get("/?token=s3cret")
        assert page.status_code == 200
        assert c.get("/api/schema").status_code == 200  # the page's cookie carries the token on


def test_a_port_in_use_is_one_line_before_any_address_is_announced(default_models):
    import socket

    from click.testing import CliRunner

    from cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        r = CliRunner().invoke(main, ["studio", "--models", str(default_models), "--no-browser", "--port", str(port)])
    finally:
        taken.close()
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"127.0.0.1:{port}: cannot serve there" in r.output and "http://" not in r.output
