"""Copies across data sets (docs/protocol.md, "External validation"): only the same picture counts
(identical, re-saved, rescaled or cropped), never a look-alike lesion."""

from pathlib import Path

import pytest
from PIL import Image

from bench.data.copies import find_copies, pictures


def make_copies(paths: list[Path], out: Path) -> list[Path]:
    """A recompressed, a cropped, an enlarged, a squashed-to-square and a re-gained copy."""
    out.mkdir()
    made = []
    for k, path in enumerate(paths):
        img = Image.open(path).convert("L")
        w, h = img.size
        copy = [img, img.crop((w // 10, h // 10, w - w // 12, h - h // 8)),
                img.resize((int(w * 1.7), int(h * 1.7)), Image.BICUBIC),
                img.resize((224, 224), Image.BILINEAR),
                img.point(lambda v: min(255, int(v * 1.2)))][k]
        dst = out / (f"copy_{k}.jpg" if k == 0 else f"copy_{k}.png")
        copy.save(dst, **({"quality": 70} if k == 0 else {}))
        made.append(dst)
    return made


@pytest.mark.slow
def test_copies_of_training_pictures_are_found_and_look_alike_lesions_are_not(small_synthetic,
                                                                            tmp_path):
    files = sorted(small_synthetic.glob("*/*.png"))
    reference, others = files[::2], files[1::2]  # the same phantom: every lesion looks alike
    copies = make_copies(reference[:5], tmp_path / "copies")
    new = others + copies
    found = find_copies(pictures(new), pictures(reference))
    flagged = {new[c.new].name: reference[c.ref].name for c in found}
    assert flagged == {c.name: r.name for c, r in zip(copies, reference[:5], strict=True)}
    evidence = {new[c.new].name: c.evidence for c in found}
    assert "ORB" in evidence["copy_1.png"]  # the crop needs the geometric match


@pytest.mark.slow
def test_identical_pixels_are_a_copy_whatever_the_file_format(small_synthetic, tmp_path):
    src = sorted(small_synthetic.glob("benign/*.png"))[0]
    Image.open(src).save(tmp_path / "same.bmp")
    (found,) = find_copies(pictures([tmp_path / "same.bmp"]), pictures([src]))
    assert found.evidence == "identical pixels"
