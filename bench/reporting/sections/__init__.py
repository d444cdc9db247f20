"""The report's sections, one module each, in the README's order.

Every section module gives three things (the :class:`Section` protocol):

* ``write_tables(ctx)``: its tables from the runs into ``<out>/tables`` (CSV for the numbers,
  Markdown and LaTeX for reading), recording its main ones in ``ctx.tables``;
* ``draw_figures(tdir, fdir)``: its figures from those saved tables alone (so figures redraw
  without the runs), returning the files written;
* ``readme(ctx)``: its part of ``<out>/README.md`` as lines (empty when it has nothing to show).

:func:`bench.reporting.report.build_report` writes every section's tables in order, then every
section's figures, then the README as the concatenation of their parts. A new section is a new
module here, added to :data:`SECTIONS` where its part belongs in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bench.reporting.sections import (
    allimage,
    calibration,
    cvfolds,
    errors,
    experiments,
    explanations,
    external,
    heldout,
    illustrations,
    lesion,
    provenance,
    reliance,
    reproduce,
    sitegap,
    sites,
)
from bench.reporting.sections.context import ReportContext


class Section(Protocol):
    """What a section module provides (see the module docstring)."""

    def write_tables(self, ctx: ReportContext) -> None: ...

    def draw_figures(self, tdir: Path, fdir: Path) -> list[Path]: ...

    def readme(self, ctx: ReportContext) -> list[str]: ...


SECTIONS: tuple[Section, ...] = (
    provenance,  # header: data, profile, seeds, code versions, warnings, flagged rows
    heldout,  # Table 3, Fig. 2 (ROC), confusion matrices
    lesion,  # lesion-level metrics beside Table 3's image-level ones
    allimage,  # every usable image scored once (grouped K-fold), beside Table 3
    calibration,  # calibration and prevalence, reliability diagram
    cvfolds,  # every CV fold
    explanations,  # Grad-CAM measures and examples
    external,  # internal vs external sets
    reliance,  # burnt-in annotations
    sites,  # trained-on × scored-on matrix (tables only)
    sitegap,  # levers against the site gap (only when a run set holds one)
    errors,  # Fig. 3: Fus2Net's misclassified images
    illustrations,  # Fig. 5 and 6: augmentation and preprocessing
    experiments,  # Table 1, Fig. 1, Table 2
    reproduce,  # the commands
)

__all__ = ["SECTIONS", "ReportContext", "Section"]
