"""Text metrics between a prediction and its ground truth, per pair and in fast batches.

Definitions (p = normalized prediction, g = normalized ground truth, |x| = length in Unicode code points,
lev = Levenshtein distance with unit costs, computed by rapidfuzz):

* ``cer``      = lev(p, g) / |g|, unclipped (an insertion-heavy prediction can exceed 1, as in the original).
                 Empty g: 0.0 when p is empty too, else 1.0 (every predicted character is wrong).
* ``cer_clipped`` = min(cer, 1).
* ``ned``      = lev(p, g) / max(|p|, |g|) (OmniDocBench / PaddleOCR normalized edit distance); 0.0 when both empty.
* ``exact``    = 1.0 when p == g else 0.0.
* ``bag_f1``   = the original's character F1: tp = multiset overlap Σ_c min(count_p(c), count_g(c)),
                 P = tp/|p|, R = tp/|g|, F1 = 2PR/(P+R); 0.0 when tp = 0 or either side is empty. Both empty: 1.0 in
                 our profiles, 0.0 in ``seed`` (the original returned 0.0 because tp = 0).
* ``lcs_f1``   = 1 − rapidfuzz ``Indel.normalized_distance(p, g)`` = 2·LCS(p, g) / (|p| + |g|) (1.0 when both empty):
                 F1 of the longest common subsequence, so it is order-aware; bag_f1 − lcs_f1 measures reading-order
                 errors.
* ``seal_ned`` = min over the |p| cyclic shifts p[k:] + p[:k] of ned(shift, g): circular seal text has no fixed start.
* Error anatomy = rapidfuzz ``Levenshtein.editops(g, p)`` (the alignment transforming the ground truth into the
  prediction): ``replace`` = substitution, ``delete`` = a ground-truth character missing from the prediction
  (deletion), ``insert`` = an extra predicted character (insertion). S + D + I = lev(p, g).
* S/T confusion: a substitution (g_char → p_char) with t2s(g_char) == t2s(p_char) under OpenCC ``t2s`` applied to
  each character alone, i.e. an error that vanishes when both sides are converted to Simplified Chinese.
* Repetition loop: the prediction contains a unit u of 1–32 characters repeated at least 5 times in a row, and u
  occurs (non-overlapping ``str.count``) more than 2·count_g(u) + 3 times in p — a decoding loop, not a legitimately
  repeated string.

Not for: normalization (normalization.py), tables (tables.py), aggregation and bootstrap (stats.py, scoring.py).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel, Levenshtein

from lib.metrics.normalization import DEFAULT_PROFILE, normalize, t2s

__all__ = ["cer", "cer_clipped", "ned", "bag_f1", "lcs_f1", "exact_match", "seal_ned", "error_anatomy",
           "repetition_loop", "is_st_confusion", "st_confusions", "PairBatch", "score_pairs", "LOOP_MIN_REPEATS", "LOOP_MAX_UNIT"]

LOOP_MIN_REPEATS = 5
LOOP_MAX_UNIT = 32


def _norm(text, profile):
    return normalize(text, profile) if profile is not None else ("" if text is None else str(text))


def _cer_value(d: int, len_g: int, len_p: int) -> float:
    if len_g == 0:
        return 0.0 if len_p == 0 else 1.0
    return d / len_g


def cer(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """Character error rate lev(p, g)/|g| on normalized text, unclipped; empty g → 0.0 if p is empty else 1.0.
    ``profile=None`` compares the raw strings."""
    p, g = _norm(pred, profile), _norm(gt, profile)
    return _cer_value(Levenshtein.distance(p, g), len(g), len(p))


def cer_clipped(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """min(cer, 1)."""
    return min(cer(pred, gt, profile), 1.0)


def ned(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """Normalized edit distance lev(p, g)/max(|p|, |g|) in [0, 1]; 0.0 when both are empty."""
    p, g = _norm(pred, profile), _norm(gt, profile)
    m = max(len(p), len(g))
    return Levenshtein.distance(p, g) / m if m else 0.0


def exact_match(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """1.0 when the normalized strings are equal, else 0.0."""
    return float(_norm(pred, profile) == _norm(gt, profile))


def _bag_f1_from_overlap(tp: int, len_p: int, len_g: int, both_empty: float) -> float:
    if len_p == 0 and len_g == 0:
        return both_empty
    if tp == 0 or len_p == 0 or len_g == 0:
        return 0.0
    return 2.0 * tp / (len_p + len_g)  # = 2PR/(P+R) with P = tp/|p|, R = tp/|g|


def bag_f1(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE,
           both_empty: float | None = None) -> float:
    """Bag-of-characters F1 (the original's ``char_f1_score``): multiset overlap tp, 2·tp/(|p|+|g|); 0.0 when tp = 0.
    Both sides empty → ``both_empty`` (default 1.0, or 0.0 under the ``seed`` profile as in the original)."""
    p, g = _norm(pred, profile), _norm(gt, profile)
    if both_empty is None:
        both_empty = 0.0 if profile == "seed" else 1.0
    tp = sum((Counter(p) & Counter(g)).values())
    return _bag_f1_from_overlap(tp, len(p), len(g), both_empty)


def lcs_f1(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """Order-aware F1 = 1 − Indel.normalized_distance(p, g) = 2·LCS/(|p|+|g|); 1.0 when both are empty."""
    p, g = _norm(pred, profile), _norm(gt, profile)
    return 1.0 - Indel.normalized_distance(p, g)


def seal_ned(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> float:
    """Rotation-invariant NED for circular seal text: min over k of lev(p[k:] + p[:k], g) / max(|p|, |g|) (every cyclic
    shift of the prediction's arc text); 0.0 when both are empty."""
    p, g = _norm(pred, profile), _norm(gt, profile)
    m = max(len(p), len(g))
    if m == 0:
        return 0.0
    best = Levenshtein.distance(p, g)
    for k in range(1, len(p)):
        if best == 0:
            break
        d = Levenshtein.distance(p[k:] + p[:k], g, score_cutoff=best - 1)
        if d < best:
            best = d
    return best / m


@functools.lru_cache(maxsize=65536)
def _t2s_char(ch: str) -> str:
    return t2s(ch)


def st_confusions(confusions: Counter) -> int:
    """Number of substitutions whose (gt, pred) characters become equal under t2s, from a confusion counter."""
    return sum(n for k, n in confusions.items() if _t2s_char(k[0]) == _t2s_char(k[1]))


def is_st_confusion(gt_char: str, pred_char: str) -> bool:
    """True when two different characters become equal under OpenCC t2s (a Traditional/Simplified variant error)."""
    return gt_char != pred_char and _t2s_char(gt_char) == _t2s_char(pred_char)


def repetition_loop(pred: str, gt: str, min_repeats: int = LOOP_MIN_REPEATS,
                    max_unit: int = LOOP_MAX_UNIT) -> dict | None:
    """Detect a decoding loop in already-normalized text: returns {unit, repeats, count_pred, count_gt} or None.
    See the module docstring for the rule."""
    n = len(pred)
    if n < min_repeats:
        return None
    a = np.frombuffer(pred.encode("utf-32-le"), dtype=np.uint32)
    for period in range(1, min(max_unit, n // min_repeats) + 1):
        eq = a[period:] == a[:-period]
        need = period * (min_repeats - 1)  # a run of `need` equalities at lag `period` = min_repeats copies
        if eq.size < need:
            break
        c = np.concatenate(([0], np.cumsum(eq, dtype=np.int32)))
        hits = np.nonzero(c[need:] - c[:-need] == need)[0]
        if hits.size == 0:
            continue
        starts = hits[np.diff(hits, prepend=-2) != 1]  # one start per periodic run
        for start in starts[:64].tolist():
            unit = pred[start:start + period]
            cp, cg = pred.count(unit), gt.count(unit)
            if cp > 2 * cg + 3:
                run = need  # extend to the whole run from `start`
                while start + run < eq.size and eq[start + run]:
                    run += 1
                return {"unit": unit, "repeats": (run + period) // period, "count_pred": cp, "count_gt": cg}
    return None


# Character classes of the ground truth for `anatomy.by_class`: what a 公文 reader gets wrong is often not the Hanzi
# but the document numbers, dates and Latin words between them.
CHAR_CLASSES = ("hanzi", "digit", "latin", "other")
_CLASS_RANGES = ((0x3400, 0x4DBF, 0), (0x4E00, 0x9FFF, 0), (0xF900, 0xFAFF, 0), (0x20000, 0x3134F, 0),  # ideographs
                 (0x30, 0x39, 1), (0xFF10, 0xFF19, 1),  # digits, ASCII and full-width
                 (0x41, 0x5A, 2), (0x61, 0x7A, 2), (0xFF21, 0xFF3A, 2), (0xFF41, 0xFF5A, 2))  # Latin letters


def _bmp_class_table() -> np.ndarray:
    """Class of every Basic Multilingual Plane code point (int8; astral code points are handled apart)."""
    table = np.full(0x10000, 3, dtype=np.int8)
    for lo, hi, c in _CLASS_RANGES:
        if lo < 0x10000:
            table[lo:hi + 1] = c
    return table


_BMP_CLASS = _bmp_class_table()


def class_matrix(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 4) int64: characters of each text per CHAR_CLASSES - Hanzi (CJK ideographs incl. extensions and
    compatibility ideographs), digits (ASCII and full-width), Latin letters (ASCII and full-width), other
    (punctuation, symbols, everything else). Vectorised over the concatenation (one pass for a whole batch)."""
    n = len(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    if not lens.sum():
        return np.zeros((n, len(CHAR_CLASSES)), dtype=np.int64)
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    if int(cps.max()) < 0x10000:
        cls = _BMP_CLASS[cps]
    else:  # astral: only the CJK extensions B-G count (as Hanzi)
        cls = np.where(cps < 0x10000, _BMP_CLASS[np.minimum(cps, 0xFFFF)],
                       np.where((cps >= 0x20000) & (cps <= 0x3134F), 0, 3)).astype(np.int8)
    owner = np.repeat(np.arange(n, dtype=np.int64), lens)
    return np.bincount(owner * len(CHAR_CLASSES) + cls, minlength=n * len(CHAR_CLASSES)).reshape(n, -1)


def error_anatomy(pred: str | None, gt: str | None, profile: str | None = DEFAULT_PROFILE) -> dict:
    """Substitutions / deletions / insertions and the substitution pairs of one sample (see module docstring)."""
    batch = score_pairs([pred], [gt], profile=profile, anatomy=True, workers=1)
    return {"substitutions": int(batch.sub[0]), "deletions": int(batch.dele[0]), "insertions": int(batch.ins[0]),
            "confusions": {(k[0], k[1]): v for k, v in batch.confusions.items()},
            "st_confusions": batch.st_total,
            "repetition_loop": batch.loops.get(0)}


# ------------------------------------------------------------------------------------------------- batch scoring
@dataclass
class PairBatch:
    """Per-pair integer counts for a batch (all numpy int64 arrays of length n) plus corpus-level counters."""

    len_p: np.ndarray
    len_g: np.ndarray
    lev: np.ndarray
    indel: np.ndarray
    bag_tp: np.ndarray
    sub: np.ndarray
    dele: np.ndarray
    ins: np.ndarray
    exact: np.ndarray
    conf_keys: np.ndarray  # substitution pairs, encoded ord(gt_char) << 21 | ord(pred_char), distinct
    conf_counts: np.ndarray  # how often each pair occurs
    st_total: int  # substitutions that are Traditional/Simplified variants (see st_confusions)
    loops: dict = field(default_factory=dict)  # index -> repetition_loop() result
    anatomy: bool = True
    cls_chars: np.ndarray | None = None  # (n, 4) ground-truth characters per CHAR_CLASSES (anatomy only)
    cls_errors: np.ndarray | None = None  # (n, 4) of them substituted or deleted in the alignment (anatomy only)

    @property
    def confusions(self) -> Counter:
        """gt_char + pred_char (a 2-character string) -> count."""
        return Counter({chr(int(k) >> 21) + chr(int(k) & 0x1FFFFF): int(c)
                        for k, c in zip(self.conf_keys, self.conf_counts)})

    def top_confusions(self, k: int) -> list[tuple[str, str, int]]:
        """The k most frequent substitution pairs (gt_char, pred_char, count); ties by code point."""
        if self.conf_keys.size == 0:
            return []
        order = np.lexsort((self.conf_keys, -self.conf_counts))[:k]
        return [(chr(int(self.conf_keys[i]) >> 21), chr(int(self.conf_keys[i]) & 0x1FFFFF), int(self.conf_counts[i]))
                for i in order]


def _batched_distance(P: list[str], G: list[str], scorer, workers: int, scale: float = 1.0) -> np.ndarray:
    """scorer(P[i], G[i]) for all i. Progressive score cutoffs let rapidfuzz use its banded algorithm (fast for good
    predictions); only the pairs that exceed a cutoff are recomputed with the next, wider one, the last pass exact."""
    n = len(P)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    longest = np.fromiter((max(len(p), len(g)) for p, g in zip(P, G)), dtype=np.int64, count=n)
    med = float(np.median(longest))
    cutoffs = [int(scale * max(16, 0.06 * med)), int(scale * max(64, 0.25 * med)), None]
    d = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    for cutoff in cutoffs:
        if cutoff is not None and cutoff >= med:
            continue
        sub_p = P if todo.size == n else [P[i] for i in todo]
        sub_g = G if todo.size == n else [G[i] for i in todo]
        r = np.asarray(process.cpdist(sub_p, sub_g, scorer=scorer, score_cutoff=cutoff, workers=workers,
                                      dtype=np.int64), dtype=np.int64)
        if cutoff is None:
            d[todo] = r
            break
        ok = r <= cutoff
        d[todo[ok]] = r[ok]
        todo = todo[~ok]
        if todo.size == 0:
            break
    return d


def _anatomy_one(p: str, g: str, confusions: Counter):
    """Returns (lev, S, D, I, bag overlap, longest inserted/substituted block in p, the ground-truth characters
    substituted or deleted); adds substitution pairs to
    `confusions` (S/T variants are counted from it, once per distinct pair: st_confusions).
    lev = len(editops): one banded editops call replaces a separate distance computation."""
    lp, lg = len(p), len(g)
    if p == g:
        return 0, 0, 0, 0, lg, 0, ""
    if lp == 0:
        return lg, 0, lg, 0, 0, 0, g
    if lg == 0:
        return lp, 0, 0, lp, 0, lp, ""
    # score_hint only picks rapidfuzz's banded implementation (it widens the band as needed); the result is exact
    # lev >= |lp - lg|, so a length gap (a repetition loop, a truncated page) raises the hint
    ops = Levenshtein.editops(g, p, score_hint=max(32, max(lp, lg) * 6 // 100, 2 * abs(lp - lg))).as_list()
    rep = [(a, b) for op, a, b in ops if op == "replace"]
    dels = [a for op, a, _ in ops if op == "delete"]
    inss = [b for op, _, b in ops if op == "insert"]
    s, de, i = len(rep), len(dels), len(inss)
    pairs = [g[a] + p[b] for a, b in rep]  # 2-character keys: cheaper to count, pickle and merge than tuples
    matched = lg - s - de
    extra = 0
    if (s or de) and (s or i):  # multiset overlap of the unmatched characters of both sides
        rg = Counter([x[0] for x in pairs] + [g[a] for a in dels])
        rp = Counter([x[1] for x in pairs] + [p[b] for b in inss])
        extra = sum(min(rg[c], rp[c]) for c in rg.keys() & rp.keys())
    if pairs:
        confusions.update(pairs)
    longest = 0
    if s + i >= LOOP_MIN_REPEATS - 1:  # longest run of consecutive prediction positions that are not matches
        pos = sorted([b for _, b in rep] + inss)
        run = longest = 1
        for x, y in zip(pos, pos[1:]):
            run = run + 1 if y == x + 1 else 1
            if run > longest:
                longest = run
    wrong = "".join([x[0] for x in pairs] + [g[a] for a in dels])
    return len(ops), s, de, i, matched + extra, longest, wrong


def _score_chunk(preds: Sequence, gts: Sequence, profile: str | None, anatomy: bool, both_empty: float,
                 workers: int) -> PairBatch:
    P = [_norm(x, profile) for x in preds]
    G = [_norm(x, profile) for x in gts]
    n = len(P)
    len_p = np.fromiter(map(len, P), dtype=np.int64, count=n)
    len_g = np.fromiter(map(len, G), dtype=np.int64, count=n)
    indel = np.zeros(n, np.int64) if anatomy else _batched_distance(P, G, Indel.distance, workers, scale=2.0)
    lev = np.zeros(n, np.int64) if anatomy else _batched_distance(P, G, Levenshtein.distance, workers)
    sub = np.zeros(n, np.int64)
    dele = np.zeros(n, np.int64)
    ins = np.zeros(n, np.int64)
    bag_tp = np.zeros(n, np.int64)
    confusions: Counter = Counter()
    loops = {}
    cls_chars = cls_errors = None
    if anatomy:
        wrong = [""] * n
        for k in range(n):
            p, g = P[k], G[k]
            d, s, de, i, tp, longest, wrong[k] = _anatomy_one(p, g, confusions)
            lev[k], sub[k], dele[k], ins[k], bag_tp[k] = d, s, de, i, tp
            if d:
                # The Levenshtein alignment's matches are a common subsequence, so Indel = |p|+|g|-2·LCS <= lev + S:
                # a tight, always-valid cutoff for rapidfuzz's banded LCS (exact; recomputed if it were exceeded).
                x = Indel.distance(p, g, score_cutoff=d + s)
                indel[k] = x if x <= d + s else Indel.distance(p, g)
            if longest >= LOOP_MIN_REPEATS - 1:
                loop = repetition_loop(P[k], G[k])
                if loop:
                    loops[k] = loop
        cls_chars, cls_errors = class_matrix(G), class_matrix(wrong)
    else:
        for k in range(n):
            if lev[k] == 0:
                bag_tp[k] = len_g[k]
            elif len_p[k] and len_g[k]:
                bag_tp[k] = sum((Counter(P[k]) & Counter(G[k])).values())
    exact = (lev == 0).astype(np.int64)
    conf_keys = np.fromiter(((ord(k[0]) << 21) | ord(k[1]) for k in confusions), dtype=np.uint64,
                            count=len(confusions))
    conf_counts = np.fromiter(confusions.values(), dtype=np.int64, count=len(confusions))
    return PairBatch(len_p, len_g, lev, indel, bag_tp, sub, dele, ins, exact, conf_keys, conf_counts,
                     st_confusions(confusions), loops, anatomy, cls_chars, cls_errors)


def _merge(batches: list[PairBatch], offsets: list[int]) -> PairBatch:
    cat = {name: np.concatenate([getattr(b, name) for b in batches]) for name in
           ("len_p", "len_g", "lev", "indel", "bag_tp", "sub", "dele", "ins", "exact")}
    keys = np.concatenate([b.conf_keys for b in batches])
    counts = np.concatenate([b.conf_counts for b in batches])
    if keys.size:  # the same pair may come from several chunks: add their counts (vectorised, no dict merge)
        keys, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=counts, minlength=keys.size).astype(np.int64)
    loops = {}
    for b, off in zip(batches, offsets):
        loops.update({k + off: v for k, v in b.loops.items()})
    cls = {}
    if batches and all(b.cls_chars is not None for b in batches):
        cls = {name: np.concatenate([getattr(b, name) for b in batches]) for name in ("cls_chars", "cls_errors")}
    return PairBatch(**cat, conf_keys=keys, conf_counts=counts, st_total=sum(b.st_total for b in batches),
                     loops=loops, anatomy=batches[0].anatomy if batches else True, **cls)


_POOL_DATA: tuple = ()  # (preds, gts) inherited by forked workers
_POOL_LOCK = __import__("threading").Lock()


def _pool_worker(args):
    lo, hi, profile, anatomy, both_empty = args
    preds, gts = _POOL_DATA
    return _score_chunk(preds[lo:hi], gts[lo:hi], profile, anatomy, both_empty, 1)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def score_pairs(preds: Sequence[str | None], gts: Sequence[str | None], profile: str | None = DEFAULT_PROFILE,
                anatomy: bool = True, workers: int | None = None, both_empty: float | None = None,
                min_chars_for_processes: int = 2_000_000) -> PairBatch:
    """Score many (prediction, ground truth) pairs. Distances run in rapidfuzz's C++ code on `workers` threads;
    when the corpus is large (> `min_chars_for_processes` characters) and fork is available, the per-pair Python work
    (normalization, editops anatomy) is split over `workers` processes."""
    if len(preds) != len(gts):
        raise ValueError(f"score_pairs: {len(preds)} predictions but {len(gts)} ground truths")
    workers = default_workers() if workers is None else max(1, int(workers))
    if both_empty is None:
        both_empty = 0.0 if profile == "seed" else 1.0
    n = len(preds)
    total = sum(len(x) for x in gts if x) + sum(len(x) for x in preds if x)
    import multiprocessing as mp
    import threading

    # Processes only from a single-threaded caller (forking a process that runs other Python threads, e.g. a web
    # server, can copy a held lock into the child); the UIs and small files take the in-process path.
    if (workers > 1 and total > min_chars_for_processes and n >= 2 * workers and threading.active_count() == 1
            and "fork" in mp.get_all_start_methods() and _POOL_LOCK.acquire(blocking=False)):
        global _POOL_DATA
        try:
            _POOL_DATA = (list(preds), list(gts))
            bounds = np.linspace(0, n, 4 * workers + 1).astype(int)
            tasks = [(int(lo), int(hi), profile, anatomy, both_empty)
                     for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
            with mp.get_context("fork").Pool(workers) as pool:
                parts = pool.map(_pool_worker, tasks)
        finally:
            _POOL_DATA = ()
            _POOL_LOCK.release()
        return _merge(parts, [t[0] for t in tasks])
    return _score_chunk(preds, gts, profile, anatomy, both_empty, workers)
