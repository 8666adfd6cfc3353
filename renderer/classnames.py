"""Class names: one alias table, so that a models folder's `aeroplane/`, a photo folder's `Planes/` and CIFAR's
`airplane` meet as one class. It lives in the renderer (its per-class tables read it too); train.classes
re-exports it."""

from __future__ import annotations

ALIASES = {
    "aeroplane": "airplane",
    "plane": "airplane",
    "aircraft": "airplane",
    "automobile": "car",
    "auto": "car",
    "bike": "bicycle",
    "motorbike": "motorcycle",
    "people": "person",
    "pedestrian": "person",
    "human": "person",
    "boat": "ship",
    "lorry": "truck",
    # plural folder names, as photo sets are often filed (an explicit list: no rule turns "bus" into "bu")
    "airplanes": "airplane",
    "aeroplanes": "airplane",
    "planes": "airplane",
    "bicycles": "bicycle",
    "bikes": "bicycle",
    "buses": "bus",
    "cars": "car",
    "automobiles": "car",
    "horses": "horse",
    "motorcycles": "motorcycle",
    "motorbikes": "motorcycle",
    "persons": "person",
    "trains": "train",
    "trucks": "truck",
    "lorries": "truck",
    "boats": "ship",
    "ships": "ship",
}


def canonical(name: str) -> str:
    """The one spelling mixreal uses for a class name."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key)
