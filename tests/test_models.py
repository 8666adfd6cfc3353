"""The paper's appendix models: shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch

from train.models import AlexNet, ResNet20, build_model, count_parameters


def test_resnet20_shape_and_size():
    m = ResNet20(10)
    assert 265_000 < count_parameters(m) < 280_000  # the appendix's ~0.27 M
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3)]
    assert len(convs) == 19  # stem + 3 stages x 3 blocks x 2 (+ the linear layer makes 20)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_alexnet_shape():
    m = AlexNet(9, image_size=224)
    convs = [x for x in m.features if isinstance(x, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
    dense = [x for x in m.classifier if isinstance(x, torch.nn.Linear)]
    assert [d.out_features for d in dense] == [4096, 4096, 9]
    m.eval()
    assert m(torch.zeros(1, 3, 224, 224)).shape == (1, 9)


def test_glorot_init_and_unknown_model():
    m = build_model("resnet20", 4)
    w = m.fc.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", 4)
