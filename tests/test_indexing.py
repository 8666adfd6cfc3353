"""The global sample index: class-balanced, one-to-one, and the inverse of itself."""

from __future__ import annotations

from collections import Counter

import pytest

from renderer.indexing import SampleIndex, SampleSpec

LABELS = ["car"] * 9 + ["horse"] * 3 + ["truck"] * 2 + ["airplane"] * 4  # the shared meshes' c10-da4 classes


def test_any_run_of_indices_is_class_balanced():
    index = SampleIndex(LABELS)
    for start in (0, 7, 1001):
        classes = Counter(LABELS[index.spec_at(i).model] for i in range(start, start + 400))
        assert set(classes.values()) == {100}


def test_models_of_a_class_share_its_images_evenly():
    index = SampleIndex(LABELS)
    per_model = Counter(index.spec_at(i).model for i in range(4 * 90))  # 90 samples of each class
    assert [per_model[m] for m in range(9)] == [10] * 9 and [per_model[m] for m in (12, 13)] == [45, 45]


def test_spec_at_and_global_index_are_inverse():
    index = SampleIndex(LABELS)
    specs = [index.spec_at(i) for i in range(5000)]
    assert len(set(specs)) == 5000
    assert [index.global_index(s) for s in specs] == list(range(5000))
    assert index.spec_at(index.global_index(SampleSpec(13, 77))) == SampleSpec(13, 77)


def test_dataset_specs():
    index = SampleIndex(LABELS)
    per_model = index.specs(per_model=3)
    assert sorted(per_model, key=lambda s: (s.model, s.index)) == [SampleSpec(m, k) for m in range(18)
                                                                   for k in range(3)]
    assert [index.global_index(s) for s in per_model] == sorted(index.global_index(s) for s in per_model)
    assert Counter(LABELS[s.model] for s in index.specs(per_class=5)) == {c: 5 for c in set(LABELS)}
    with pytest.raises(ValueError):
        index.specs(per_model=1, per_class=1)
