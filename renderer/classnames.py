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
    "watercraft": "ship",
    "vessel": "ship",
}

# ShapeNetCore's class folders are WordNet synset ids (ShapeNetCore.v2/02958343/<model>/models/...): v2's 55
# classes (and v1's cellphone) by name, so that `--models ShapeNetCore.v2` meets a photo folder's `car/` and
# gets the per-class camera and colour tables
SHAPENET_SYNSETS = {
    "02691156": "airplane", "02747177": "trash_bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02834778": "bicycle", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus", "02933112": "cabinet",
    "02942699": "camera", "02946921": "can", "02954340": "cap", "02958343": "car", "02992529": "cellphone",
    "03001627": "chair", "03046257": "clock", "03085013": "keyboard", "03207941": "dishwasher",
    "03211117": "display", "03261776": "earphone", "03325088": "faucet", "03337140": "file_cabinet",
    "03467517": "guitar", "03513137": "helmet", "03593526": "jar", "03624134": "knife", "03636649": "lamp",
    "03642806": "laptop", "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone",
    "03761084": "microwave", "03790512": "motorcycle", "03797390": "mug", "03928116": "piano",
    "03938244": "pillow", "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer",
    "04074963": "remote", "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard", "04256520": "sofa",
    "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower", "04468005": "train",
    "04530566": "watercraft", "04554684": "washer",
}


def canonical(name: str) -> str:
    """The one spelling mixreal uses for a class name."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = SHAPENET_SYNSETS.get(key, key)
    return ALIASES.get(key, key)
