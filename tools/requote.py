"""Refresh every quoted block of the README, docs/ and results/README.md from the file it quotes.

A page quotes a generated file (a report table, the sentences counted from one) verbatim between

    <!-- quoted from results/busi-cpu/tables/external_summary.md -->
    ...the file's text...
    <!-- end of quote -->

so its numbers are the results set's, never copied by hand; tests/test_docs.py fails when a
block differs from its file. After a results set is regenerated, this rewrites the blocks:

    python tools/requote.py            # the README, every page of docs/, results/README.md
    python tools/requote.py --check    # exit 1 and name the stale blocks, writing nothing
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# markers are whole lines (a page may name them in prose, as docs/development.md does)
QUOTE = re.compile(r"^(<!-- quoted from (?P<path>\S+) -->\n)(?P<body>.*?)(\n<!-- end of quote -->)$",
                   re.S | re.M)


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "results" / "README.md"]


OPEN = re.compile(r"^<!-- quoted from \S+ -->$", re.M)
CLOSE = re.compile(r"^<!-- end of quote -->$", re.M)


def quotes(text: str) -> list[tuple[str, str]]:
    """``(quoted path, quoted text)`` of every block in a page; a marker without its partner
    (or a block inside a block) is an error, never a silently skipped or swallowed block."""
    found = [(m["path"], m["body"]) for m in QUOTE.finditer(text)]
    opened, closed = len(OPEN.findall(text)), len(CLOSE.findall(text))
    if not opened == closed == len(found) or any(OPEN.search(body) for _, body in found):
        raise ValueError(f"{opened} opening and {closed} closing quote markers make "
                         f"{len(found)} blocks: every '<!-- quoted from PATH -->' line needs its "
                         "own '<!-- end of quote -->' line after the quoted text")
    return found


def source_text(root: Path, path: str) -> str:
    """The quoted file's text as a block holds it (no trailing blank lines)."""
    return (root / path).read_text().rstrip("\n")


def requote(text: str, root: Path = ROOT) -> str:
    """The page with every block replaced by its file's current text."""
    return QUOTE.sub(lambda m: m[1] + source_text(root, m["path"]) + m[4], text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="name the stale blocks; write nothing")
    args = p.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        try:
            blocks = quotes(text)
        except ValueError as exc:
            print(f"error: {page.relative_to(ROOT)}: {exc}", file=sys.stderr)
            return 2
        for path, _ in blocks:
            if not (ROOT / path).is_file():
                print(f"error: {page.relative_to(ROOT)} quotes {path}, which does not exist",
                      file=sys.stderr)
                return 2
        new = requote(text)
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                tmp = page.with_name(f".{page.name}.tmp")
                tmp.write_text(new)
                tmp.replace(page)  # atomic: a page is never left half written
    verb = "stale" if args.check else "requoted"
    print("\n".join(f"{verb}: {name}" for name in stale) or "every quote is current")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
