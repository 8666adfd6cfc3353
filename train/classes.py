"""Class names: one alias table for aligning real and synthetic sets, and the CIFAR-DA class maps.

Every class name that enters mixreal (a models-folder name, a manifest's class, a CIFAR label) goes
through `canonical()`, so VisDA's `aeroplane` and CIFAR's `airplane` meet as one class.

CIFAR-DA class maps (`target class <- source:label`):

| class      | da9                                              | da4               | c10-da4            |
|------------|--------------------------------------------------|-------------------|--------------------|
| airplane   | cifar10 airplane                                 |                   | cifar10 airplane   |
| bicycle    | cifar100 bicycle                                 | cifar100 bicycle  |                    |
| bus        | cifar100 bus                                     |                   |                    |
| car        | cifar10 automobile                               | cifar10 automobile| cifar10 automobile |
| horse      | cifar10 horse                                    |                   | cifar10 horse      |
| motorcycle | cifar100 motorcycle                              | cifar100 motorcycle|                   |
| person     | cifar100 baby, boy, girl, man, woman             |                   |                    |
| train      | cifar100 train                                   | cifar100 train    |                    |
| truck      | cifar10 truck                                    |                   | cifar10 truck      |

da4's car: the paper draws da4 "from CIFAR-100", but CIFAR-100 has no car class. Its nearest,
pickup_truck, is a truck (a class of its own in da9), so it would teach "car" with truck images.
CIFAR-10's automobile class is exactly cars (sedans, SUVs, hatchbacks), and both datasets are 32x32
crops of the same 80-million-tiny-images collection, so taking car from CIFAR-10 adds no domain shift.
"""

from __future__ import annotations

import json
from pathlib import Path

from renderer.classnames import ALIASES, canonical  # noqa: F401 - the one table, re-exported here

CLASS_MAPS: dict[str, dict[str, list[str]]] = {
    "da9": {
        "airplane": ["cifar10:airplane"],
        "bicycle": ["cifar100:bicycle"],
        "bus": ["cifar100:bus"],
        "car": ["cifar10:automobile"],
        "horse": ["cifar10:horse"],
        "motorcycle": ["cifar100:motorcycle"],
        "person": ["cifar100:baby", "cifar100:boy", "cifar100:girl", "cifar100:man", "cifar100:woman"],
        "train": ["cifar100:train"],
        "truck": ["cifar10:truck"],
    },
    "da4": {
        "bicycle": ["cifar100:bicycle"],
        "car": ["cifar10:automobile"],
        "motorcycle": ["cifar100:motorcycle"],
        "train": ["cifar100:train"],
    },
    "c10-da4": {
        "airplane": ["cifar10:airplane"],
        "car": ["cifar10:automobile"],
        "horse": ["cifar10:horse"],
        "truck": ["cifar10:truck"],
    },
}


def load_class_map(spec: str | Path) -> dict[str, list[str]]:
    """A named map (da9, da4, c10-da4) or a JSON / TOML file {class: ["cifar10:label", ...]}."""
    if str(spec) in CLASS_MAPS:
        return {k: list(v) for k, v in CLASS_MAPS[str(spec)].items()}
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{spec}: neither a class map name ({', '.join(CLASS_MAPS)}) nor a file")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(path.read_text())
        else:
            raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot parse class map ({exc})") from None
    out: dict[str, list[str]] = {}
    for cls, sources in raw.items():
        sources = [sources] if isinstance(sources, str) else sources
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
            raise ValueError(f"{path}: class {cls!r} needs a list of 'cifar10:label' / 'cifar100:label' sources")
        for s in sources:
            if s.split(":", 1)[0] not in ("cifar10", "cifar100") or ":" not in s:
                raise ValueError(f"{path}: source {s!r} of class {cls!r} is not 'cifar10:label' or 'cifar100:label'")
        out[canonical(cls)] = sources
    if not out:
        raise ValueError(f"{path}: empty class map")
    return out
