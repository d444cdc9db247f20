"""The reviewed pairs behind the same-lesion rule (docs/protocol.md, Same lesion); the command is
``python -m bench.pairs``.

* ``sample``: draw image pairs of a data set across the whole range of every measure of
  :mod:`bench.data.lesion` (quantile bins of each measure over the candidate pairs, weighted
  towards the top where same-lesion pairs live, plus random pairs), and draw numbered contact
  sheets without scores (``<out>/pairs_NN.png``) and a CSV to fill in (``<out>.csv``: one row per
  pair, ``verdict`` = same / different / unsure, judged by eye from the sheets).
* ``fit``: fit the logistic rule on a judged CSV, measure it and write it
  (``datasets/splits/same_lesion_rule.json``): pair-level precision and recall by repeated 5-fold
  cross-validation (a pair that is not a candidate counts as "different", as when the rule is
  applied), and group-level precision and recall by the same folds (the rule fitted without a
  fold groups the whole data set; a held-out "same" pair is found when both images end in one
  group, a held-out "different" pair is wrongly merged when they do), for average and single
  linkage; the largest group; and how often consecutive file numbers mean the same lesion.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from bench.core.atomic import write_csv, write_json
from bench.core.errors import BenchError
from bench.data.copies import picture_of
from bench.data.datasets import load_index
from bench.data.lesion import (
    FEATURES,
    LesionRule,
    PairEvidence,
    candidate_pairs,
    lesion_groups,
    load_rule,
    matrices,
    pair_features,
)
from bench.data.manifest import decode, hard_links
from bench.data.review import pair_sheets

log = logging.getLogger(__name__)

VERDICTS = ("same", "different", "unsure")
REPEATS, FOLDS = 5, 5
QUANTILES = (0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0)
BOOTSTRAP_RULE = LesionRule(coef=(0.0,) * len(FEATURES), intercept=0.0,
                            mean=(0.0,) * len(FEATURES), scale=(1.0,) * len(FEATURES))


class Evidence:
    """Every image of a data set decoded once, with its whole-set similarity matrices."""

    def __init__(self, data: Path | None, kind: str, rule: LesionRule):
        self.index = load_index(data, kind)
        decoded = decode([self.index.abspath(s) for s in self.index.samples], skip_bad=True)
        keep = [k for k, d in enumerate(decoded) if not isinstance(d, str)]
        self.samples = [self.index.samples[k] for k in keep]
        images = [decoded[k][0] for k in keep]
        self.bits = np.array([decoded[k][1] for k in keep], dtype=bool)
        self.digests = [decoded[k][2] for k in keep]
        self.pictures = [picture_of(im) for im in images]
        self.m = matrices(self.pictures, images, rule)
        self.pos = {s.id: k for k, s in enumerate(self.samples)}
        self.candidates = candidate_pairs([self.m.nccz, self.m.embz], rule.neighbours)

    def features(self, pairs: np.ndarray) -> np.ndarray:
        return pair_features(self.m, self.pictures, pairs)

    def indices(self, a: pd.Series, b: pd.Series) -> np.ndarray:
        missing = [x for x in [*a, *b] if x not in self.pos]
        if missing:
            raise BenchError(f"`reviewed`: image {missing[0]!r} is not a usable image of `data`")
        i, j = a.map(self.pos).to_numpy(), b.map(self.pos).to_numpy()
        return np.column_stack([np.minimum(i, j), np.maximum(i, j)])


def sample_pairs(ev: Evidence, per_bin: int, n_random: int, seed: int) -> pd.DataFrame:
    """Pairs drawn across the range of every measure (module docstring)."""
    if len(ev.samples) < 2:
        raise BenchError(f"`data` {ev.index.root}: {len(ev.samples)} usable image(s); pairs "
                         "need at least 2")
    rng = np.random.default_rng(seed)
    feats = ev.features(ev.candidates)
    chosen: dict[int, str] = {}
    for col, name in enumerate(FEATURES if len(feats) else ()):
        v = feats[:, col]
        edges = np.quantile(v, QUANTILES)
        for b in range(len(QUANTILES) - 1):
            pool = [k for k in np.nonzero((v >= edges[b]) & (v <= edges[b + 1]))[0]
                    if k not in chosen]
            for k in rng.choice(pool, size=min(per_bin, len(pool)), replace=False):
                chosen[int(k)] = f"{name} bin {b}"
    rows = [(*ev.candidates[k], why) for k, why in chosen.items()]
    rows += [(i, j, "random pair") for i, j in random_pairs(
        len(ev.samples), {tuple(p) for p in ev.candidates.tolist()}, n_random, rng)]
    order = rng.permutation(len(rows))
    return pd.DataFrame({
        "pair": np.arange(1, len(rows) + 1),
        "a": [ev.samples[rows[k][0]].id for k in order],
        "b": [ev.samples[rows[k][1]].id for k in order],
        "drawn_by": [rows[k][2] for k in order],
        "verdict": "", "confidence": "", "reason": "",
    })


def random_pairs(n: int, taken: set[tuple[int, int]], k: int, rng: np.random.Generator
                 ) -> list[tuple[int, int]]:
    """Up to ``k`` distinct pairs ``(i, j)``, ``i < j < n``, not in ``taken``: all there are when
    fewer exist (said in a note), so a small data set never makes the draw loop for ever."""
    total = n * (n - 1) // 2
    if k <= 0:
        return []
    if total <= 2_000_000:  # enumerate (at most a few thousand images): exact and bounded
        i, j = np.triu_indices(n, 1)
        pool = [(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True) if (a, b) not in taken]
        picked = [pool[p] for p in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    else:  # a large set: nearly every pair is free, so a bounded number of draws suffices
        picked, seen = [], set(taken)
        for _ in range(100 * k + 10_000):
            if len(picked) == k:
                break
            a, b = sorted(rng.choice(n, 2, replace=False).tolist())
            if (a, b) not in seen:
                picked.append((a, b))
                seen.add((a, b))
    if len(picked) < k:
        log.info(f"note: only {len(picked)} pairs outside the candidate pairs could be drawn among "
                 f"{n} images; {len(picked)} random pairs instead of {k}")
    return picked


def _read_verdicts(path: Path, option: str, need: set[str], **read) -> pd.DataFrame:
    """A CSV of verdicts, its columns and verdicts checked (one line naming the file otherwise)."""
    try:
        df = pd.read_csv(path, keep_default_na=False, **read)
    except (OSError, ValueError) as exc:
        raise BenchError(f"`{option}` {path}: cannot read it ({exc})") from None
    missing = need - set(df.columns)
    if missing:
        raise BenchError(f"`{option}` {path}: columns {sorted(missing)} are missing")
    bad = df[~df.verdict.isin(VERDICTS)]
    if len(bad):
        raise BenchError(f"`{option}` {path} line {int(bad.index[0]) + 2}: verdict "
                         f"{bad.verdict.iloc[0]!r} is not one of {', '.join(VERDICTS)}")
    return df


def read_reviewed(path: Path) -> pd.DataFrame:
    return _read_verdicts(path, "reviewed", {"a", "b", "verdict"},
                          dtype={"a": str, "b": str, "verdict": str})


def fit_rule(x: np.ndarray, y: np.ndarray, base: LesionRule) -> LesionRule:
    """Standardise, then an L2 logistic regression with balanced class weights."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    model.fit((x - mean) / scale, y)
    return replace(base, coef=tuple(float(c) for c in model.coef_[0]),
                   intercept=float(model.intercept_[0]), mean=tuple(float(v) for v in mean),
                   scale=tuple(float(v) for v in scale))


def rates(same: np.ndarray, y: np.ndarray) -> dict:
    tp, fp = int((same & (y == 1)).sum()), int((same & (y == 0)).sum())
    fn = int((~same & (y == 1)).sum())
    return {"precision": round(tp / max(tp + fp, 1), 3), "recall": round(tp / max(tp + fn, 1), 3),
            "true_positive": tp, "false_positive": fp, "false_negative": fn}


def validate(ev: Evidence, pairs: np.ndarray, x: np.ndarray, y: np.ndarray, base: LesionRule,
             hash_threshold: int = 40) -> dict:
    """Cross-validated pair- and group-level precision and recall (module docstring)."""
    candidates = {tuple(c) for c in ev.candidates.tolist()}
    is_cand = np.array([tuple(p) in candidates for p in pairs.tolist()])
    hard = hard_links(ev.samples, ev.bits, ev.digests, hash_threshold)
    cand_x = ev.features(ev.candidates)
    prob = np.zeros((REPEATS, len(y)))
    grouped = {m: np.zeros((REPEATS, len(y)), bool) for m in ("average", "single")}
    largest = {m: [] for m in grouped}
    for r in range(REPEATS):
        for train, held in StratifiedKFold(FOLDS, shuffle=True, random_state=r).split(x, y):
            rule = fit_rule(x[train], y[train], base)
            prob[r, held] = rule.probability(x[held]) * is_cand[held]
            evidence = PairEvidence(len(ev.samples), ev.candidates, cand_x)
            for method in grouped:
                labels = lesion_groups(evidence, rule, hard, method=method)
                grouped[method][r, held] = labels[pairs[held, 0]] == labels[pairs[held, 1]]
                largest[method].append(int(np.bincount(np.unique(
                    labels, return_inverse=True)[1]).max()))
    out = {"pairs": {f"threshold {t:g}": rates(prob.mean(0) >= t, y) for t in (0.3, 0.5, 0.7)}}
    for method, g in grouped.items():
        out[f"groups_{method}_linkage"] = {**rates(g.mean(0) >= 0.5, y),
                                          "largest_group_over_folds": [min(largest[method]),
                                                                       max(largest[method])]}
    i, j = pairs[:, 0], pairs[:, 1]
    previous = (ev.m.nccz[i, j] >= 3.2) & (ev.m.ncc[i, j] >= 0.5)
    out["previous_rule_ncc_contrast_z_3.2"] = rates(previous & is_cand, y)
    out["same_pairs_that_are_candidates"] = f"{int(is_cand[y == 1].sum())} of {int((y == 1).sum())}"
    return out


def file_number(sample_id: str) -> int | None:
    """The last number of an image's ID (``benign (316)`` → 316), or ``None``."""
    m = re.search(r"(\d+)\D*$", sample_id)
    return int(m.group(1)) if m else None


def near_numbers(ev: Evidence, max_gap: int) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of images of one class whose file numbers are at most
    ``max_gap`` apart: consecutive shots are often one lesion, and the rule cannot tell."""
    by_label: dict[int, dict[int, int]] = {}
    for k, s in enumerate(ev.samples):
        n = file_number(s.id)
        if n is not None:
            by_label.setdefault(s.label, {})[n] = k
    out = set()
    for numbers in by_label.values():
        for n, k in numbers.items():
            for gap in range(1, max_gap + 1):
                if n + gap in numbers:
                    out.add((min(k, numbers[n + gap]), max(k, numbers[n + gap])))
    return sorted(out)


def consecutive_numbers(ev: Evidence, reviewed: pd.DataFrame, max_gap: int = 3) -> dict:
    """How often two images of one class with file numbers at most ``max_gap`` apart were judged
    the same, in all and per gap."""
    labels = {s.id: s.label for s in ev.samples}
    gaps = [abs(file_number(a) - file_number(b))
            if labels[a] == labels[b] and None not in (file_number(a), file_number(b)) else 0
            for a, b in zip(reviewed.a, reviewed.b, strict=True)]
    near = reviewed.assign(gap=gaps)
    near = near[(near.gap >= 1) & (near.gap <= max_gap)]
    judged = near[near.verdict != "unsure"]
    return {f"reviewed_pairs_with_numbers_at_most_{max_gap}_apart": len(near),
            "judged_same": int((judged.verdict == "same").sum()),
            "judged_different": int((judged.verdict == "different").sum()),
            "unsure": int((near.verdict == "unsure").sum()),
            "judged_same_by_gap": {str(g): f"{int((judged[judged.gap == g].verdict == 'same').sum())}"
                                   f" of {int((judged.gap == g).sum())}"
                                   for g in range(1, max_gap + 1)},
            "used_by_the_rule": False}


@dataclass(frozen=True)
class FitSettings:
    """How the rule is fitted: the data set, its candidate pairs and the grouping threshold."""
    data: Path | None
    dataset: str = "auto"
    neighbours: int = 10
    embed_side: int = 128
    threshold: float = 0.5


def fit_reviewed(reviewed_csv: Path, out: Path, s: FitSettings, force: bool = False) -> dict:
    """Fit the rule on the judged pairs of ``reviewed_csv``, measure it and write it to ``out``
    (``force``: replace an existing file). Returns the rule's validation record."""
    if s.neighbours < 1:
        raise BenchError("`neighbours` must be >= 1")
    reviewed = read_reviewed(reviewed_csv)
    base = replace(BOOTSTRAP_RULE, neighbours=s.neighbours, embed_side=s.embed_side,
                   threshold=s.threshold, linkage=s.threshold)
    ev = Evidence(s.data, s.dataset, base)
    judged = reviewed[reviewed.verdict != "unsure"].reset_index(drop=True)
    pairs = ev.indices(judged.a, judged.b)
    x, y = ev.features(pairs), (judged.verdict == "same").to_numpy().astype(int)
    validation = {
        "reviewed_pairs": len(reviewed),
        "verdicts": {v: int((reviewed.verdict == v).sum()) for v in VERDICTS},
        "cross_validation": f"{REPEATS} x stratified {FOLDS}-fold over the judged pairs "
                            "(unsure pairs left out)",
        **validate(ev, pairs, x, y, base),
        "consecutive_file_numbers": consecutive_numbers(ev, reviewed),
    }
    rule = replace(fit_rule(x, y, base), fitted_on=f"{reviewed_csv.name} ({len(judged)} judged "
                   f"pairs of {ev.index.kind})", validation=validation)
    if out.exists() and not force:
        raise BenchError(f"`out` {out}: exists; pass `force` to replace it")
    write_json(out, asdict(rule))
    return {"threshold": rule.threshold, **validation}


def sample_for_review(out: Path, s: FitSettings, per_bin: int = 5, n_random: int = 20,
                      seed: int = 7, force: bool = False) -> tuple[Path, int, int]:
    """Draw pairs to judge: ``<out>.csv`` and numbered contact sheets in ``out``. Returns the CSV,
    the number of pairs and of sheets."""
    if s.neighbours < 1:
        raise BenchError("`neighbours` must be >= 1")
    csv = out.with_suffix(".csv")
    if csv.exists() and not force:
        raise BenchError(f"`out` {csv}: exists; pass `force` to replace it")
    ev = Evidence(s.data, s.dataset, replace(BOOTSTRAP_RULE, neighbours=s.neighbours))
    pairs = sample_pairs(ev, per_bin, n_random, seed)
    write_csv(csv, pairs)
    sheets = pair_sheets(ev.index, list(pairs[["pair", "a", "b"]].itertuples(index=False,
                                                                           name=None)), out)
    return csv, len(pairs), len(sheets)


def recheck_pairs(ev: Evidence, rule: LesionRule, reviewed: pd.DataFrame, max_gap: int,
                  band: tuple[float, float], seed: int, first: int = 1) -> pd.DataFrame:
    """The second look (docs/protocol.md, Same lesion): every not-yet-judged pair of one class
    whose file numbers are at most ``max_gap`` apart, and every not-yet-judged candidate pair
    whose p(same lesion) under ``rule`` lies in ``[band[0], band[1])``, shuffled together (so the
    sheets do not reveal why a pair was drawn) and numbered from ``first``."""
    done = {frozenset(p) for p in zip(reviewed.a, reviewed.b, strict=True)}
    why: dict[tuple[int, int], list[str]] = {}
    for i, j in near_numbers(ev, max_gap):
        gap = abs(file_number(ev.samples[i].id) - file_number(ev.samples[j].id))
        why.setdefault((i, j), []).append(f"file numbers {gap} apart")
    p_all = rule.probability(ev.features(ev.candidates)) if len(ev.candidates) else np.zeros(0)
    p_of = {tuple(c): float(p) for c, p in zip(ev.candidates.tolist(), p_all, strict=True)}
    for (i, j), p in p_of.items():
        if band[0] <= p < band[1]:
            why.setdefault((i, j), []).append(f"rule p in [{band[0]:g}, {band[1]:g})")
    rows = [(i, j, "; ".join(w)) for (i, j), w in sorted(why.items())
            if frozenset((ev.samples[i].id, ev.samples[j].id)) not in done]
    order = np.random.default_rng(seed).permutation(len(rows))
    return pd.DataFrame({
        "pair": np.arange(first, first + len(rows)),
        "a": [ev.samples[rows[k][0]].id for k in order],
        "b": [ev.samples[rows[k][1]].id for k in order],
        "drawn_by": [rows[k][2] for k in order],
        "rule_p": [round(p_of.get((rows[k][0], rows[k][1]), 0.0), 4) for k in order],
        "verdict": "", "confidence": "", "reason": "",
    })


def sample_recheck(out: Path, s: FitSettings, reviewed_csv: Path, max_gap: int = 3,
                   band: tuple[float, float] = (0.1, 0.3), seed: int = 11, per_sheet: int = 6,
                   force: bool = False) -> tuple[Path, int, int]:
    """Draw the second look's pairs (:func:`recheck_pairs`, scored by the committed rule) and
    write ``<out>.csv`` (the key: why each pair was drawn and its rule p, for after the judging)
    and blind numbered sheets in ``out``. Returns the CSV, the number of pairs and of sheets."""
    if not 0 <= band[0] < band[1] <= 1:
        raise BenchError(f"`band` {band}: give two probabilities lo < hi in [0, 1]")
    if max_gap < 0:
        raise BenchError("`max_gap` must be >= 0")
    csv = out.with_suffix(".csv")
    if csv.exists() and not force:
        raise BenchError(f"`out` {csv}: exists; pass `force` to replace it")
    reviewed = read_reviewed(reviewed_csv)
    rule = replace(load_rule(), neighbours=s.neighbours)
    ev = Evidence(s.data, s.dataset, rule)
    numbers = pd.to_numeric(reviewed["pair"], errors="coerce") if "pair" in reviewed else None
    first = int(numbers.max()) + 1 if numbers is not None and numbers.notna().any() else 1
    pairs = recheck_pairs(ev, rule, reviewed, max_gap, band, seed, first)
    write_csv(csv, pairs)
    sheets = pair_sheets(ev.index, list(pairs[["pair", "a", "b"]].itertuples(index=False,
                                                                           name=None)),
                         out, per_sheet, hide_names=True)
    return csv, len(pairs), len(sheets)


JUDGED_COLUMNS = ("pair", "verdict", "confidence", "reason")


def _read_judge(name: str, path: Path) -> pd.DataFrame:
    df = _read_verdicts(path, "verdicts", set(JUDGED_COLUMNS), dtype=str)
    df = df.assign(pair=pd.to_numeric(df.pair, errors="coerce"), judge=name)
    if df.pair.isna().any():
        raise BenchError(f"`verdicts` {path}: a pair number is not a number")
    return df.drop_duplicates("pair", keep="last")


def merge_verdicts(key: pd.DataFrame, judges: dict[str, Path], adjudication: pd.DataFrame | None,
                   round_label: str) -> pd.DataFrame:
    """The judged pairs of ``key`` (a :func:`sample_recheck` CSV) as rows of the reviewed CSV.

    One judge: their verdict. Two or more: ``judges_agree`` says whether they agree; agreed
    verdicts stand; a disagreement takes the lead's ``adjudication`` (``pair, verdict, note``)
    where given, else ``unsure`` (docs/protocol.md, Same lesion). ``judges_agree`` is blank for a
    pair judged once: agreement is only said where it was measured."""
    frames = [_read_judge(name, path) for name, path in judges.items()]
    judged = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(judged.pair.astype(int)) - set(key.pair.astype(int)))
    if unknown:
        raise BenchError(f"`verdicts`: pair {unknown[0]} is not in the key")
    adj = {} if adjudication is None else {
        int(p): (v, n) for p, v, n in zip(adjudication.pair, adjudication.verdict,
                                          adjudication.get("note", ""), strict=True)}
    by_pair = {int(p): g for p, g in judged.groupby("pair")}
    rows = []
    for r in key.itertuples():
        g = by_pair.get(int(r.pair))
        if g is None:
            continue
        verdicts = list(g.verdict)
        first = g.iloc[0]
        agree = "" if len(g) == 1 else str(len(set(verdicts)) == 1)
        verdict, note = verdicts[0], ""
        if agree == "False":
            verdict, note = adj.get(int(r.pair), ("unsure", "judges disagree: unsure"))
        rows.append({"pair": int(r.pair), "a": r.a, "b": r.b, "verdict": verdict,
                     "judge_verdict": "; ".join(f"{j}:{v}" for j, v in zip(g.judge, verdicts,
                                                                          strict=True)),
                     "confidence": first.confidence, "reason": first.reason,
                     "judges": "+".join(g.judge), "judges_agree": agree, "adjudication": note,
                     "drawn_by": r.drawn_by, "round": round_label})
    return pd.DataFrame(rows)


def add_verdicts(reviewed_csv: Path, key_csv: Path, judges: dict[str, Path],
                 adjudication_csv: Path | None, round_label: str) -> tuple[int, dict]:
    """Append the judged pairs of ``key_csv`` to ``reviewed_csv`` (atomically); a pair already
    there is refused, never replaced. Returns the rows added and their verdict counts."""
    reviewed = read_reviewed(reviewed_csv).astype(str)
    try:
        key = pd.read_csv(key_csv, dtype={"a": str, "b": str}, keep_default_na=False)
        adj = None if adjudication_csv is None else pd.read_csv(adjudication_csv, dtype=str,
                                                                keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise BenchError(f"`key`/`adjudication`: cannot read it ({exc})") from None
    new = merge_verdicts(key, judges, adj, round_label)
    before = {frozenset(p) for p in zip(reviewed.a, reviewed.b, strict=True)}
    again = [f"{a} / {b}" for a, b in zip(new.a, new.b, strict=True) if frozenset((a, b)) in before]
    if again:
        raise BenchError(f"`reviewed` {reviewed_csv}: already judges {again[0]}; the verdicts "
                         "were added before")
    if "round" not in reviewed:
        reviewed = reviewed.assign(round="1")
    if "judges" in reviewed:  # agreement only where two judges judged
        single = ~reviewed.judges.astype(str).str.contains(r"\+")
        reviewed.loc[single, "judges_agree"] = ""
    out = pd.concat([reviewed, new.astype(str)], ignore_index=True).fillna("")
    write_csv(reviewed_csv, out)
    return len(new), new.verdict.value_counts().to_dict()
