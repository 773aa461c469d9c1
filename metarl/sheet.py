"""A contact sheet of classified images: `metarl adapt --sheet FILE.png`.

Each query is drawn as a thumbnail with its predicted class and probability beneath. Where the
query's folder names its true class (`query/<class>/<image>`), a right answer gets a green
frame and a wrong one a red frame with the true class written under the prediction.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

CELL, PAD, TEXT = 128, 6, 34
GREEN, RED, GREY = (30, 150, 60), (210, 40, 40), (160, 160, 160)


def _thumbnail(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img = img.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
    flat.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
    if max(flat.size) < CELL:  # small images (Omniglot is 105 px) are enlarged, blockily
        scale = CELL / max(flat.size)
        size = (max(1, round(flat.width * scale)), max(1, round(flat.height * scale)))
        flat = flat.resize(size, Image.Resampling.NEAREST)
    return flat


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text`, shortened with an ellipsis in the middle until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 4:
        keep -= 1
        short = text[: keep // 2] + "..." + text[len(text) - keep // 2 :]
        if draw.textlength(short, font=font) <= width:
            return short
    return text[:4]


def draw_sheet(
    path: Path, queries: list[Path], probs: torch.Tensor, classes: tuple[str, ...], columns: int = 6
) -> None:
    """Write a PNG grid of `queries` labelled by their most probable class `[Q, N] probs`."""
    font = ImageFont.load_default()
    cols = max(1, min(columns, len(queries)))
    rows = (len(queries) + cols - 1) // cols
    w, h = CELL + 2 * PAD, CELL + 2 * PAD + TEXT
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    draw = ImageDraw.Draw(sheet)
    best_p, best = probs.max(-1)
    for i, q in enumerate(queries):
        x0, y0 = (i % cols) * w, (i // cols) * h
        thumb = _thumbnail(q)
        sheet.paste(
            thumb, (x0 + PAD + (CELL - thumb.width) // 2, y0 + PAD + (CELL - thumb.height) // 2)
        )
        predicted = classes[int(best[i])]
        truth = q.parent.name if q.parent.name in classes else None
        colour = GREY if truth is None else (GREEN if truth == predicted else RED)
        draw.rectangle(
            [x0 + 2, y0 + 2, x0 + w - 3, y0 + CELL + 2 * PAD - 3], outline=colour, width=3
        )
        prob = f" {float(best_p[i]):.2f}"
        label = _fit(draw, predicted, font, CELL - int(draw.textlength(prob, font=font))) + prob
        draw.text((x0 + PAD, y0 + CELL + 2 * PAD), label, fill="black", font=font)
        if truth is not None and truth != predicted:
            wrong = _fit(draw, f"wrong: is {truth}", font, CELL)
            draw.text((x0 + PAD, y0 + CELL + 2 * PAD + 14), wrong, fill=RED, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
