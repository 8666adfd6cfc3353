"""Which EGL device is the GPU that CUDA calls N.

EGL enumerates devices in its own order (eglQueryDevicesEXT), which need not be CUDA's, and
CUDA_VISIBLE_DEVICES restricts CUDA but not EGL: a process that sees only physical GPU 3 as its CUDA
device 0 would render on EGL device 0, some other GPU. The NVIDIA driver tells, for each EGL device, the
CUDA device it is (the EGL_NV_device_cuda extension: attribute EGL_CUDA_DEVICE_NV, a physical CUDA ordinal),
so a CUDA ordinal as this process sees it maps to physical = CUDA_VISIBLE_DEVICES[ordinal] and then to the
EGL device whose attribute equals it. Without the extension (Mesa, other vendors) the EGL index is used as
given, with a one-line warning when that may be the wrong GPU.

The query itself (`egl_devices`) talks to libEGL through ctypes; the mapping (`egl_index_for`) is a pure
function of the device list, tested with fake lists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

EGL_CUDA_DEVICE_NV = 0x323A
EGL_EXTENSIONS = 0x3055


@dataclass(frozen=True)
class EglDevice:
    index: int  # position in eglQueryDevicesEXT's list: what moderngl's device_index takes
    cuda: int | None  # EGL_CUDA_DEVICE_NV (physical CUDA ordinal), None where the driver does not tell
    extensions: str = ""


def egl_devices() -> list[EglDevice]:
    """Every EGL device with its CUDA ordinal where the driver gives one; [] when EGL cannot be asked."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return []
    get = egl.eglGetProcAddress
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.c_char_p]
    query_devices = get(b"eglQueryDevicesEXT")
    query_attrib = get(b"eglQueryDeviceAttribEXT")
    query_string = get(b"eglQueryDeviceStringEXT")
    if not query_devices:
        return []
    devices_fn = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_int))(query_devices)
    count = ctypes.c_int(0)
    if not devices_fn(0, None, ctypes.byref(count)) or count.value <= 0:
        return []
    handles = (ctypes.c_void_p * count.value)()
    if not devices_fn(count.value, handles, ctypes.byref(count)):
        return []
    attrib_fn = None
    if query_attrib:
        attrib_fn = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_void_p, ctypes.c_int,
                                     ctypes.POINTER(ctypes.c_ssize_t))(query_attrib)
    string_fn = None
    if query_string:
        string_fn = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)(query_string)
    out = []
    for i in range(count.value):
        ext = ""
        if string_fn is not None:
            raw = string_fn(handles[i], EGL_EXTENSIONS)
            ext = raw.decode(errors="replace") if raw else ""
        cuda = None
        if attrib_fn is not None and "EGL_NV_device_cuda" in ext:
            value = ctypes.c_ssize_t(-1)
            if attrib_fn(handles[i], EGL_CUDA_DEVICE_NV, ctypes.byref(value)):
                cuda = int(value.value)
        out.append(EglDevice(i, cuda, ext))
    return out


def egl_index_for(ordinal: int, devices: list[EglDevice], visible: list[int] | None,
                  warn=None) -> tuple[int, str]:
    """(EGL device index, how it was chosen) for the CUDA device `ordinal` of this process.

    visible: CUDA_VISIBLE_DEVICES as integers (None: every GPU visible, ordinal = physical)."""
    if ordinal < 0:
        raise ValueError(f"device {ordinal}: a GPU index is 0 or more")
    if visible is not None:
        if ordinal >= len(visible):
            raise ValueError(f"device {ordinal}: this process sees {len(visible)} GPU(s) "
                             f"(CUDA_VISIBLE_DEVICES={','.join(map(str, visible))})")
        physical = visible[ordinal]
    else:
        physical = ordinal
    for d in devices:
        if d.cuda == physical:
            return d.index, f"CUDA device {ordinal} (physical {physical}) is EGL device {d.index} (EGL_CUDA_DEVICE_NV)"
    if devices and any(d.cuda is not None for d in devices):
        known = ", ".join(f"EGL {d.index} = CUDA {d.cuda}" for d in devices if d.cuda is not None)
        raise ValueError(f"device {ordinal}: no EGL device is physical CUDA GPU {physical} ({known})")
    if warn is not None and (len(devices) > 1 or visible is not None):
        warn(f"warning: the EGL driver does not say which CUDA GPU each EGL device is (no EGL_NV_device_cuda); "
             f"rendering on EGL device {ordinal}, which may not be CUDA device {ordinal}")
    return ordinal, f"EGL device {ordinal} (no CUDA mapping: EGL's own order)"


def resolve(ordinal: int | None, warn=None) -> tuple[int | None, str]:
    """The EGL device index for a `--device` value (a CUDA ordinal of this process), and how it was found."""
    if ordinal is None:
        return None, "EGL's default device"
    from .platform import visible_devices

    return egl_index_for(int(ordinal), egl_devices(), visible_devices(), warn)
