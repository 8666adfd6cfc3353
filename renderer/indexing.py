"""The global sample index: which (model, image) sample number i is.

Indices run over the classes in turn, then over each class's models in turn, then to each model's next
image: i -> class i mod C, then the (i div C)-th sample of that class, which is image j div n_c of the
class's model j mod n_c. So any run of consecutive indices is class-balanced, however many models each
class has (the shared meshes have 9 cars and 2 trucks: indexing by model would make half of a stream
cars), and the models of one class share its images evenly.

The index is also what fixes a sample's atlas cell (core.Renderer), so it must depend only on the
models present: the sorted class names and each class's models in library order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleSpec:
    model: int  # index into the library's models
    index: int  # sample number of that model: the seed of its latent parameters


class SampleIndex:
    def __init__(self, labels: Sequence[str]):
        """`labels`: each model's class, in library order."""
        self.classes = sorted(set(labels))
        position = {c: k for k, c in enumerate(self.classes)}
        self.members: list[list[int]] = [[] for _ in self.classes]
        self.model_class: list[int] = []
        self.model_rank: list[int] = []  # the model's place among its class's models
        for m, label in enumerate(labels):
            c = position[label]
            self.model_class.append(c)
            self.model_rank.append(len(self.members[c]))
            self.members[c].append(m)

    def __len__(self) -> int:
        return len(self.model_class)

    def spec_at(self, i: int) -> SampleSpec:
        n_classes = len(self.classes)
        c, j = i % n_classes, i // n_classes
        members = self.members[c]
        return SampleSpec(members[j % len(members)], j // len(members))

    def global_index(self, spec: SampleSpec) -> int:
        c = self.model_class[spec.model]
        j = spec.index * len(self.members[c]) + self.model_rank[spec.model]
        return j * len(self.classes) + c

    def specs(self, per_model: int | None = None, per_class: int | None = None) -> list[SampleSpec]:
        """A dataset's samples in global-index order: images 0..per_model-1 of every model, or the
        first per_class samples of every class (the first per_class x C indices)."""
        if (per_model is None) == (per_class is None):
            raise ValueError("give per_model or per_class")
        if per_class is not None:
            return [self.spec_at(i) for i in range(per_class * len(self.classes))]
        specs = [SampleSpec(m, k) for m in range(len(self)) for k in range(per_model)]
        return sorted(specs, key=self.global_index)
