"""A contact sheet showing what each latent variation does: one row per variation alone, one with all."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw

from .core import RenderConfig, Renderer, SampleSpec
from .library import ModelLibrary
from .variations import VARIATION_NAMES

LABEL_WIDTH = 110


def preview_rows(base: RenderConfig) -> list[tuple[str, RenderConfig]]:
    rows = [("none", replace(base, variations=base.variations.only(())))]
    rows += [(name, replace(base, variations=base.variations.only((name,)))) for name in VARIATION_NAMES]
    rows.append(("all", replace(base, variations=base.variations.only(VARIATION_NAMES))))
    return rows


def pick_specs(library: ModelLibrary, per_row: int) -> list[SampleSpec]:
    """`per_row` samples spread over the classes: one model of each class in turn."""
    by_class: dict[str, list[int]] = {}
    for i, m in enumerate(library.models):
        by_class.setdefault(m.label, []).append(i)
    classes = sorted(by_class)
    specs = []
    for j in range(per_row):
        members = by_class[classes[j % len(classes)]]
        round_ = j // len(classes)
        specs.append(SampleSpec(members[round_ % len(members)], round_))
    return specs


def contact_sheet(library: ModelLibrary, base: RenderConfig, per_row: int = 8) -> Image.Image:
    specs = pick_specs(library, per_row)
    s = base.size
    pad = 2
    rows = preview_rows(base)
    sheet = Image.new("RGB", (LABEL_WIDTH + per_row * (s + pad), len(rows) * (s + pad) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for c, spec in enumerate(specs):
        draw.text((LABEL_WIDTH + c * (s + pad) + 2, 2), library.models[spec.model].label, fill="black")
    ctx = None
    for r, (name, config) in enumerate(rows):
        renderer = Renderer(library, config, ctx=ctx)
        ctx = renderer.ctx  # one GL context for all rows
        images = renderer.render(specs)
        y = 18 + r * (s + pad)
        draw.text((4, y + s // 2 - 6), name, fill="black")
        for c in range(per_row):
            sheet.paste(Image.fromarray(np.ascontiguousarray(images[c])), (LABEL_WIDTH + c * (s + pad), y))
    if ctx is not None:
        ctx.release()
    return sheet
