"""`mixreal studio`: the renderer's GUI in the browser (the paper's Figure 1), served from this process.

A small Starlette app and one static page (renderer/static/studio.html, plain JS, no build step):
- GET  /api/schema      every variation and render setting with its current value and kind, generated from
                        the dataclasses, so a new field appears on the page without touching it;
- GET  /api/models      classes and models (with a thumbnail each) and the load report (files skipped, why);
- GET  /api/thumb/{i}   model i in the canonical view (an index: no path ever comes from the page);
- POST /api/render      settings (shaped like the TOML file) + models + seed + count -> a grid PNG, each
                        image's latent parameters and histograms of them; the same pixels as `mixreal render`
                        for the same (seed, model, index);
- POST /api/save        the settings as the TOML `mixreal render --config` reads, written into the save folder,
                        and the exact `mixreal render` command for it.
All GL work runs on one thread that owns the context. Bad settings answer 400 with the one-line message the
config file would give; a render error answers 500 with its message: the server keeps running. It binds
127.0.0.1 unless told otherwise, and then every request needs the token printed in the URL (as Jupyter does);
request bodies are bounded.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import secrets
import socket
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import numpy as np

from .config_file import TOP_KEYS, ConfigError, _hints, apply, to_toml
from .core import RenderConfig, Renderer
from .indexing import SampleSpec
from .variations import VARIATION_NAMES, VariationConfig, _jsonable

MAX_BODY = 256 * 1024  # bytes: settings are small
MAX_IMAGES = 256
PAGE = Path(__file__).with_name("static") / "studio.html"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.toml$")


def _kind(hint, value) -> str:
    text = str(hint)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):  # per-class [low, high] ranges get a table; other tables (palettes) JSON
        return "ranges" if typing.get_args(hint)[1:] == (tuple[float, float],) else "list"
    if "Path" in text:
        return "folder"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return "range"
    if isinstance(value, tuple):
        return "list"
    if isinstance(value, (int, float)) or value is None:
        return "number"
    return "text"


def schema(cfg: RenderConfig) -> dict:
    """The page's controls: one per dataclass field, with its value and kind."""
    hints = _hints(RenderConfig)
    top = [{"name": k, "kind": _kind(hints[k], getattr(cfg, k)), "value": _jsonable(getattr(cfg, k))}
           for k in TOP_KEYS]
    sections = []
    for f in fields(VariationConfig):
        section = getattr(cfg.variations, f.name)
        h = _hints(type(section))
        sections.append({"name": f.name, "switchable": f.name in VARIATION_NAMES,
                         "fields": [{"name": g.name, "kind": _kind(h[g.name], getattr(section, g.name)),
                                     "optional": "None" in str(h[g.name]),
                                     "value": _jsonable(getattr(section, g.name))} for g in fields(section)]})
    return {"top": top, "sections": sections}


class Studio:
    """The state behind the page: the models, the GL thread and the folder configs are saved into."""

    def __init__(self, library, models_root: Path, base: RenderConfig, save_dir: Path):
        self.library, self.models_root, self.base = library, Path(models_root), base
        self.save_dir = Path(save_dir)
        self.gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gl")  # the context's one thread
        self._ctx = None
        self._renderer: tuple[str, Renderer] | None = None
        self._thumbs: dict[int, bytes] = {}

    def _renderer_for(self, cfg: RenderConfig) -> Renderer:
        from .platform import create_context

        if self._ctx is None:
            self._ctx = create_context(cfg.device)
            self._ctx.gc_mode = "auto"  # per-request renderers share it: their objects go with them
        key = json.dumps({"size": cfg.size, "supersample": cfg.supersample, "msaa": cfg.msaa, "lod": cfg.lod,
                          "seed": cfg.seed, "variations": cfg.variations.describe()}, sort_keys=True)
        if self._renderer is None or self._renderer[0] != key:
            self._renderer = (key, Renderer(self.library, cfg, ctx=self._ctx))
        return self._renderer[1]

    def settings(self, data: dict) -> RenderConfig:
        return apply(data, self.base, Path("<studio>"))

    def render(self, cfg: RenderConfig, models: list[int], count: int, per_row: int = 8) -> dict:
        """count images per chosen model (indices 0..count-1): a grid, their parameters, histograms."""
        r = self._renderer_for(cfg)
        specs = [SampleSpec(m, i) for m in models for i in range(count)]
        params = r.params(specs)
        images = r.render(specs, params=params)
        rows = params.rows()
        return {"image": _png_data_url(_grid(images, per_row)), "per_row": per_row, "size": cfg.size,
                "cells": [{"model": self.library.models[s.model].key, "class": self.library.models[s.model].label,
                           "index": s.index, "params": rows[j]} for j, s in enumerate(specs)],
                "histograms": histograms(rows)}

    def thumbnail(self, i: int) -> bytes:
        if i not in self._thumbs:
            from dataclasses import replace

            cfg = replace(self.base, size=96, variations=VariationConfig().only(()))
            image = self._renderer_for(cfg).render([SampleSpec(i, 0)])[0]
            self._thumbs[i] = _png(image)
        return self._thumbs[i]

    def close(self) -> None:
        def release():
            if self._ctx is not None:
                self._ctx.release()
        self.gl.submit(release).result()
        self.gl.shutdown()


def histograms(rows: list[dict], bins: int = 12) -> dict:
    """Per numeric latent parameter of the grid: bin edges and counts (what the page draws as bars)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        for section, table in row.items():
            if not isinstance(table, dict):
                continue
            for k, v in table.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    values.setdefault(f"{section}.{k}", []).append(float(v))
    out = {}
    for name, vs in sorted(values.items()):
        if len(set(vs)) > 1:
            counts, edges = np.histogram(vs, bins=bins)
            out[name] = {"counts": counts.tolist(), "edges": [round(float(e), 4) for e in edges]}
    return out


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def _png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(_png(image)).decode()


def _grid(images: np.ndarray, per_row: int) -> np.ndarray:
    n, h, w, c = images.shape
    rows = -(-n // per_row)
    out = np.full((rows * h, per_row * w, c), 255, np.uint8)
    for j in range(n):
        r, q = divmod(j, per_row)
        out[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[j]
    return out


def render_command(models_root: Path, toml_path: Path) -> str:
    return f"mixreal render --models {models_root} --config {toml_path} --per-model 100 --out OUT"


def create_app(studio: Studio, token: str | None = None):
    """The ASGI app. With a token, every request must carry it (?token=... or the cookie the page sets)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    async def on_gl(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(studio.gl, fn, *args)

    def denied(request: Request) -> Response | None:
        if token is None:
            return None
        given = request.query_params.get("token") or request.cookies.get("mixreal_token")
        if given is None or not secrets.compare_digest(given, token):
            return JSONResponse({"error": "this studio needs its token: open the URL it printed"}, status_code=403)
        return None

    async def body(request: Request) -> dict:
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_BODY:
            raise ValueError(f"request of {size} bytes: at most {MAX_BODY}")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ValueError(f"request of {len(raw)} bytes: at most {MAX_BODY}")
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    async def page(request: Request):
        if (r := denied(request)) is not None:
            return r
        resp = HTMLResponse(PAGE.read_text(encoding="utf-8"))
        if token is not None:
            resp.set_cookie("mixreal_token", token, httponly=True, samesite="strict")
        return resp

    async def api_schema(request: Request):
        if (r := denied(request)) is not None:
            return r
        return JSONResponse({**schema(studio.base), "models_root": str(studio.models_root)})

    async def api_models(request: Request):
        if (r := denied(request)) is not None:
            return r
        models = [{"id": i, "class": m.label, "name": m.ref.name, "key": m.key}
                  for i, m in enumerate(studio.library.models)]
        return JSONResponse({"models": models, "skipped": [[str(p), why] for p, why in studio.library.skipped]})

    async def api_thumb(request: Request):
        if (r := denied(request)) is not None:
            return r
        i = request.path_params["i"]
        if not 0 <= i < len(studio.library.models):
            return JSONResponse({"error": f"no model {i}"}, status_code=404)
        try:
            return Response(await on_gl(studio.thumbnail, i), media_type="image/png")
        except Exception as exc:  # a broken model must not take the server down
            return JSONResponse({"error": _one_line(exc)}, status_code=500)

    async def api_render(request: Request):
        if (r := denied(request)) is not None:
            return r
        try:
            data = await body(request)
            cfg = studio.settings(data.get("settings", {}))
            models = [int(m) for m in data.get("models", [])] or list(range(min(8, len(studio.library.models))))
            count = int(data.get("count", 4))
            if any(not 0 <= m < len(studio.library.models) for m in models):
                raise ValueError("a model index outside the loaded models")
            if not 1 <= count or count * len(models) > MAX_IMAGES:
                raise ValueError(f"{count} images of {len(models)} models: at most {MAX_IMAGES} at once")
        except (ConfigError, ValueError, TypeError) as exc:
            return JSONResponse({"error": _one_line(exc)}, status_code=400)
        try:
            return JSONResponse(await on_gl(studio.render, cfg, models, count, int(data.get("per_row", 8))))
        except Exception as exc:
            return JSONResponse({"error": f"render failed: {_one_line(exc)}"}, status_code=500)

    async def api_save(request: Request):
        if (r := denied(request)) is not None:
            return r
        try:
            data = await body(request)
            cfg = studio.settings(data.get("settings", {}))
            name = str(data.get("name", "studio.toml"))
            if not NAME.match(name) or ".." in name:
                raise ValueError(f"file name {name!r}: letters, digits, _ . - and ending in .toml, no folders")
        except (ConfigError, ValueError, TypeError) as exc:
            return JSONResponse({"error": _one_line(exc)}, status_code=400)
        from .export import atomic_write_text

        text = to_toml(cfg)
        path = studio.save_dir / name
        studio.save_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return JSONResponse({"path": str(path), "toml": text, "command": render_command(studio.models_root, path)})

    routes = [Route("/", page), Route("/api/schema", api_schema), Route("/api/models", api_models),
              Route("/api/thumb/{i:int}", api_thumb), Route("/api/render", api_render, methods=["POST"]),
              Route("/api/save", api_save, methods=["POST"])]
    return Starlette(routes=routes)


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
          token: str | None = None, log=print) -> None:
    """Serve until interrupted. Any host but the loopback needs a token; one is made when none is given."""
    import uvicorn

    local = host in ("127.0.0.1", "localhost", "::1")
    if not local and token is None:
        token = secrets.token_urlsafe(24)
    # bound here, before the address is announced: a port in use is one line, not a URL that leads nowhere
    # followed by uvicorn's log
    # "localhost" may resolve to ::1 first; the address printed must be the one bound
    bound = "127.0.0.1" if host == "localhost" else host
    try:
        sock = bind_socket(bound, port)
    except OSError:
        studio.close()
        raise
    shown = f"[{bound}]" if ":" in bound else bound
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    log(f"mixreal studio: {url}  (Ctrl-C to stop)")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        uvicorn.Server(uvicorn.Config(create_app(studio, token), log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
        studio.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or an OSError naming the address and why in one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise OSError(f"--host {host}: unknown address ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a studio restarted at once may rebind
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"{host}:{port}: cannot serve there ({exc.strerror or exc}); choose another --port") from None
    return sock
