"""Headless OpenGL context through EGL (Mesa llvmpipe on CPU, the NVIDIA driver on GPU)."""

from __future__ import annotations

import os

import moderngl

GL_VERSION = 430  # SSBOs carry the per-sample parameters of a batch

EGL_HELP = (
    "no headless OpenGL (EGL) context could be created: {reason}. "
    "On Debian/Ubuntu install Mesa's EGL: apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri"
)


class PlatformError(RuntimeError):
    """The machine cannot give us a headless GL context."""


def visible_devices() -> list[int] | None:
    """GPU indices this process may use, from CUDA_VISIBLE_DEVICES (None when unset)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or value.strip() == "":
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        return None


def _load_triton_first() -> None:
    """triton (which torch imports for its compiler and optimizers) bundles its own LLVM. Imported after
    Mesa's llvmpipe has loaded LLVM 15 into the process, it segfaults; imported first, both work. So any
    process that makes a GL context loads triton first when it is installed (about 0.3 s)."""
    import importlib.util
    import sys

    if "triton" in sys.modules:
        return
    try:
        if importlib.util.find_spec("triton") is not None:
            import triton  # noqa: F401
    except Exception:  # a broken triton install must not stop rendering
        pass


def create_context(device: int | None = None) -> moderngl.Context:
    """A standalone EGL context; `device` is a GPU as CUDA numbers it in this process (renderer.devices maps
    it to its EGL device, so CUDA_VISIBLE_DEVICES is respected). `ctx.extra["device"]` says which device it is
    and how it was chosen.

    On a machine without a GPU the only device is Mesa's software rasteriser, so any index
    falls back to it rather than failing: a render job written for a GPU box still runs here.
    """
    import sys

    from .devices import resolve

    _load_triton_first()
    kwargs: dict = {"standalone": True, "backend": "egl", "require": GL_VERSION}
    index, how = resolve(device, warn=lambda m: print(m, file=sys.stderr))
    if index is not None:
        kwargs["device_index"] = index
    try:
        ctx = moderngl.create_context(**kwargs)
    except Exception as exc:  # glcontext raises plain Exceptions with driver text
        if index is not None:
            try:
                kwargs.pop("device_index")
                ctx = moderngl.create_context(**kwargs)
                how = f"EGL's default device (EGL device {index} could not be opened: {_first_line(exc)})"
            except Exception:
                raise PlatformError(EGL_HELP.format(reason=_first_line(exc))) from None
        else:
            raise PlatformError(EGL_HELP.format(reason=_first_line(exc))) from None
    ctx.extra = {"device": f"{ctx.info['GL_RENDERER']}: {how}"}
    return ctx


def gpu_count() -> int:
    """CUDA GPUs torch can see (0 without torch or a driver): sharded workers take one each."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no torch, or a CUDA build on a machine without a driver
        return 0


def describe(ctx: moderngl.Context) -> str:
    info = ctx.info
    return f"{info.get('GL_RENDERER', '?')} (GL {info.get('GL_VERSION', '?')})"


def is_software(ctx: moderngl.Context) -> bool:
    renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
    return "llvmpipe" in renderer or "softpipe" in renderer or "swrast" in renderer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
