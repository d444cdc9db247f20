"""What every report figure shares: the Agg backend, byte-identical saving, one style per model,
small-multiple panels. Each figure itself lives with its section (:mod:`bench.reporting.sections`)
and is drawn from the saved report tables only, so the report can redraw without the runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from bench.core.atomic import write_atomic  # noqa: E402
from bench.engine.spec import REFERENCE  # noqa: E402

__all__ = ["REFERENCE_COLOR", "model_label", "model_panels", "model_styles", "plt", "save", "sns"]

PDF_META = {"CreationDate": None, "Producer": None, "Creator": None}


PNG_META = {"Software": None}


DPI = 150


def tight_bbox(fig: plt.Figure) -> Bbox:
    """The figure's tight bounding box (inches, padded as ``savefig`` pads it), measured once at
    the PNG's resolution: what ``bbox_inches="tight"`` would measure, without measuring it again
    for every format (that measuring is most of a many-panel figure's saving time); a layout
    engine's placement is kept from that one measuring."""
    fig.set_dpi(DPI)
    fig.draw_without_rendering()
    # the layout is placed now, once: saving each format would otherwise place it again
    fig.set_layout_engine("none")
    return fig.get_tightbbox().padded(plt.rcParams["savefig.pad_inches"])


def save(fig: plt.Figure, base: Path) -> list[Path]:
    """Write ``base.png`` and ``base.pdf`` atomically with fixed metadata (byte-identical reruns),
    both cut to one tight bounding box."""
    out = []
    bbox = tight_bbox(fig)
    for ext, meta in ((".png", PNG_META), (".pdf", PDF_META)):
        path = base.with_suffix(ext)
        write_atomic(path, lambda p, ext=ext, meta=meta: fig.savefig(p, format=ext[1:], dpi=DPI,
                                                                     metadata=meta,
                                                                     bbox_inches=bbox))
        out.append(path)
    plt.close(fig)
    return out


def wrapped(label: str) -> str:
    """A row label on two lines before its configuration, e.g. ``zeimarani_cnn`` /
    ``(trained on cleaned images)``: small-multiple titles stay apart."""
    return label.replace(" (", "\n(", 1)


def model_label(row) -> str:
    """The model's name, with ``[degenerate]`` when its row is flagged."""
    flag = " [degenerate]" if isinstance(row.get("flag"), str) and row.get("flag") else ""
    return f"{row['model']}{flag}"


REFERENCE_COLOR = "black"


def model_styles(models: list[str]) -> dict[str, tuple]:
    """A distinct (colour, line style) per model, Fus2Net black: ``colorblind`` has 10 distinct
    colours, and line styles cycle after that so no two models share both."""
    palette = sns.color_palette("colorblind", 10)
    styles = ["-", "--", "-.", ":"]
    others = [m for m in models if m != REFERENCE]
    out = {REFERENCE: (REFERENCE_COLOR, "-")}
    for k, m in enumerate(others):
        out[m] = (palette[k % len(palette)], styles[(k // len(palette)) % len(styles)])
    return out


def model_panels(n: int, width: float):
    """Small multiples, one panel per model, at most four a row, shared axes; every panel starts
    hidden and is shown when drawn on."""
    cols = min(4, max(1, n))
    rows = int(np.ceil(n / cols)) if n else 1
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.3 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes

