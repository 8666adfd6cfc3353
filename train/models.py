"""The paper's classifiers (appendix): ResNet-20 for 32 px images, an AlexNet variant for larger ones.

Notation: C<filters>-<kernel>-<stride>-<padding> convolution, B<filters>-<kernel>-<stride> a stage of
three basic residual blocks (BN + ReLU), M max-pooling, D<units> dense. Glorot (Xavier) initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def glorot_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # projection shortcut where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """C16-3-1-1, B16-3-1, B32-3-2, B64-3-2 (3 blocks each), global average pooling, k-way linear."""

    def __init__(self, num_classes: int, blocks: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        glorot_(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (N, 64): what the domain-gap meter measures in."""
        x = self.stages(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


class AlexNet(nn.Module):
    """C64-11-4-2, M, C192-5-1-2, M, C384-3-1-1, C256-3-1-1, C256-3-1-1, M, D4096, Dropout 0.5, D4096,
    Dropout 0.5, k-way."""

    def __init__(self, num_classes: int, image_size: int = 224):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        with torch.no_grad():
            n = self.features(torch.zeros(1, 3, image_size, image_size)).numel()
        self.classifier = nn.Sequential(
            nn.Linear(n, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )
        glorot_(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (N, 4096)."""
        return self.classifier[:-1](torch.flatten(self.features(x), 1))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier[-1](features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


def build_model(name: str, num_classes: int, image_size: int = 32) -> nn.Module:
    if name == "resnet20":
        return ResNet20(num_classes)
    if name == "alexnet":
        return AlexNet(num_classes, image_size)
    raise ValueError(f"unknown model {name!r}: resnet20 or alexnet")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
