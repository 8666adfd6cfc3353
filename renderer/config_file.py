"""Render settings in a TOML file shaped like the dataclasses (RenderConfig and VariationConfig):

    size = 32                      # RenderConfig's own settings at the top level
    supersample = 2
    [camera]                       # one table per variation (VariationConfig's fields)
    elevation = [-5, 30]           # a range is [low, high]
    fill = "none"                  # an optional value switched off
    [camera.elevation_by_class]    # per-class overrides
    car = [0, 15]
    [texture]
    enabled = false
    [background]
    image_dir = "photos/"          # folders relative to the TOML file

Every key is checked: an unknown section or key (with the nearest valid name), a wrong type, a range whose
low end is above its high end, a negative weight and a missing folder are each one line naming the file,
the key and the problem. `to_toml` writes any config back (what `mixreal config show` prints), and
`load_config(to_toml(c))` gives `c` again.
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

from . import variations as _variations
from .core import RenderConfig
from .variations import VariationConfig

TOP_KEYS = ("size", "supersample", "msaa", "seed", "batch_size", "lod", "texture_image_size",
            "background_image_size")
NONE = "none"  # TOML has no null: an optional setting switched off


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming the file and the key."""


def load_config(path: Path, base: RenderConfig | None = None) -> RenderConfig:
    """`base` (default: the defaults) with every setting the file gives."""
    path = Path(path)
    return apply(read_toml(path), base or RenderConfig(), path)


def read_toml(path: Path, what: str = "config file") -> dict:
    """A TOML file's table; a missing or malformed file is a ConfigError of one line naming it."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def apply(data: dict, base: RenderConfig, path: Path) -> RenderConfig:
    sections = [f.name for f in fields(VariationConfig)]
    top, var_changes = {}, {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in sections:
                _unknown(path, key, sections, "section")
            section = getattr(base.variations, key)
            var_changes[key] = _apply_section(section, value, path, key)
        else:
            if key not in TOP_KEYS:
                _unknown(path, key, list(TOP_KEYS) + sections, "key")
            top[key] = _convert(path, key, value, _hints(RenderConfig)[key], getattr(base, key))
    try:
        return replace(base, variations=replace(base.variations, **var_changes), **top)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _apply_section(section, table: dict, path: Path, name: str):
    hints = _hints(type(section))
    known = [f.name for f in fields(section)]
    changes = {}
    for key, value in table.items():
        where = f"[{name}] {key}"
        if key not in known:
            _unknown(path, f"[{name}] {key}", known, "key", bare=key)
        changes[key] = _convert(path, where, value, hints[key], getattr(section, key))
        if key.endswith("weights") and sum(changes[key]) <= 0:
            raise ConfigError(f"{path}: {where}: the weights must not all be 0")
    try:
        return replace(section, **changes)
    except ValueError as exc:  # a section's own check (e.g. an unknown scene kind)
        raise ConfigError(f"{path}: {exc}") from None


def _unknown(path: Path, key: str, valid: list[str], what: str, bare: str | None = None):
    near = difflib.get_close_matches(bare or key, valid, n=1)
    hint = f" (did you mean {near[0]}?)" if near else f" (valid: {', '.join(valid)})"
    raise ConfigError(f"{path}: unknown {what} {key}{hint}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls, vars(_variations) | {"Path": Path})


def _convert(path: Path, where: str, value, hint, current):
    """The TOML value as the field's type, or a one-line ConfigError."""
    def fail(problem: str):
        raise ConfigError(f"{path}: {where}: {problem}")

    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if isinstance(value, str) and value.lower() == NONE:
            return None
        inner = next(a for a in args if a is not type(None))
        return _convert(path, where, value, inner, current)
    if hint is bool:
        if not isinstance(value, bool):
            fail(f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"expected a number, got {value!r}")
        if value < 0 and not where.endswith(("elevation", "azimuth")):
            fail(f"expected a number >= 0, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail(f"expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str):
            fail(f"expected a folder path, got {value!r}")
        folder = (path.parent / value).resolve()
        if not folder.is_dir():
            fail(f"no such folder {folder}")
        return folder
    if origin is dict:
        if not isinstance(value, dict):
            fail(f"expected a table of class = value, got {value!r}")
        return {k: _convert(path, f"{where}.{k}", v, args[1], None) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            fail(f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(path, f"{where}[{i}]", v, args[0], None) for i, v in enumerate(value))
        if len(value) != len(args):
            fail(f"expected {len(args)} values, got {len(value)}")
        out = []
        for i, (v, a) in enumerate(zip(value, args, strict=True)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (a is int and not isinstance(v, int)):
                fail(f"value {i + 1} is not a {'whole number' if a is int else 'number'}: {v!r}")
            out.append(int(v) if a is int else float(v))
        if len(out) == 2 and out[0] > out[1]:
            fail(f"the low end {value[0]} is above the high end {value[1]}")
        if where.endswith("weights") and any(v < 0 for v in out):
            fail(f"a weight is negative: {value}")
        return tuple(out)
    fail(f"cannot be set from a config file (type {hint})")


def to_toml(cfg: RenderConfig) -> str:
    """The whole config as TOML: every setting, defaults included (a file to start from)."""
    lines = ["# mixreal render settings: mixreal render --config THIS_FILE", ""]
    for key in TOP_KEYS:
        lines.append(f"{key} = {_value(getattr(cfg, key))}")
    for section in fields(cfg.variations):
        value = getattr(cfg.variations, section.name)
        lines += ["", f"[{section.name}]"]
        tables = []
        for f in fields(value):
            v = getattr(value, f.name)
            if isinstance(v, dict):
                tables.append((f.name, v))
            else:
                lines.append(f"{f.name} = {_value(v)}")
        for name, table in tables:
            lines += ["", f"[{section.name}.{name}]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else f'"{k}"'


def _value(v) -> str:
    if v is None:
        return f'"{NONE}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if is_dataclass(v):
        raise TypeError(f"nested dataclass {type(v).__name__} has no TOML form")
    raise TypeError(f"no TOML form for {v!r}")
