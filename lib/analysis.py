"""Shared helpers of the data and result analysis scripts (core/data_analysis/*.py, core/add_layout.py):
script of a character or a label, label length buckets, layout detectors, leakage checks, slice statistics.

Definitions (used in every report, so a slice means the same thing everywhere):
- character class: `hant` = a Han character in the Traditional charset Big5 (cp950) but not in the Simplified
  charset GB2312 (臺, 灣, 發), `hans` = in GB2312 but not in Big5 (台湾's 湾, 发), `han` = any other Han character
  (in both, e.g. 中, 台, 文; or in neither), `latin` (letters), `digit`, `punct` (Unicode P*/S*), `space`, `other`.
- label script: `hant` if it has Traditional-only characters and no Simplified-only ones, `hans` the reverse,
  `mixed` if it has both, `han` if its Han characters are all shared forms, `latin` if it has no Han character but
  letters/digits, `empty` if nothing but whitespace/punctuation.
- length bucket: on the label with whitespace removed: 0-19, 20-99, 100-499, 500+ characters.

Not for: metric definitions (lib/metrics) or loading files (lib/data.py, lib/results.py).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import Any, Iterable, Sequence

__all__ = ["char_class", "script_mix", "label_script", "length_bucket", "LENGTH_BUCKETS", "detect_layout",
           "red_seal_fraction", "near_duplicates", "strip_markup"]

LENGTH_BUCKETS = ((0, 20, "0-19"), (20, 100, "20-99"), (100, 500, "100-499"), (500, None, "500+"))
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_TAGS = re.compile(r"<[^>]+>")


def _in_charset(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
        return True
    except UnicodeEncodeError:
        return False


@functools.lru_cache(maxsize=65536)
def char_class(ch: str) -> str:
    if ch.isspace():
        return "space"
    if _HAN.match(ch):
        big5, gb = _in_charset(ch, "cp950"), _in_charset(ch, "gb2312")
        if big5 and not gb:
            return "hant"
        if gb and not big5:
            return "hans"
        return "han"
    if ch.isascii() and ch.isalpha():
        return "latin"
    if ch.isdigit():
        return "digit"
    cat = unicodedata.category(ch)
    if cat[0] in "PS":
        return "punct"
    if ch.isalpha():
        return "latin" if unicodedata.name(ch, "").startswith("LATIN") else "other"
    return "other"


def strip_markup(text: str) -> str:
    """Label text without HTML tags (tables are scored and counted by their cell text)."""
    return _TAGS.sub("", text)


def script_mix(texts: Iterable[str]) -> Counter:
    """Character counts by class over all texts (markup removed)."""
    c: Counter = Counter()
    for t in texts:
        for ch in strip_markup(t or ""):
            c[char_class(ch)] += 1
    return c


def label_script(text: str) -> str:
    mix = script_mix([text])
    if mix["hant"] and mix["hans"]:
        return "mixed"
    if mix["hant"]:
        return "hant"
    if mix["hans"]:
        return "hans"
    if mix["han"]:
        return "han"
    if mix["latin"] or mix["digit"]:
        return "latin"
    return "empty"


def length_bucket(text: str) -> str:
    n = len(re.sub(r"\s+", "", strip_markup(text or "")))
    for lo, hi, name in LENGTH_BUCKETS:
        if n >= lo and (hi is None or n < hi):
            return name
    return LENGTH_BUCKETS[-1][2]


def red_seal_fraction(image_path: str, max_side: int = 400) -> float | None:
    """Share of strongly red pixels (seal ink) in the image, on a copy shrunk to `max_side`; None if unreadable."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            a = np.asarray(im, dtype=np.int16)
    except Exception:  # missing/corrupt images are reported by validate_data, not here
        return None
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    red = (r > 120) & (r - g > 50) & (r - b > 40)
    return float(red.mean())


def detect_layout(label: str, image_path: str | None = None, *, seal_min_fraction: float = 0.0015,
                  seal_max_fraction: float = 0.45, vertical_aspect: float = 2.5,
                  size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Layout attributes from simple detectors: table markup in the label, red-seal colour mass in the image
    (a share of strongly red pixels between `seal_min_fraction` and `seal_max_fraction`: more is a red background,
    not ink), vertical text by aspect ratio (height / width >= `vertical_aspect`), label length bucket.
    The seal detector cannot tell seal ink from red printed text: on colourful pages it over-reports."""
    from lib.metrics.tables import has_table

    attrs: dict[str, Any] = {"table": bool(has_table(label or "")), "length_bucket": length_bucket(label),
                             "script": label_script(label or "")}
    if image_path:
        frac = red_seal_fraction(image_path)
        attrs["seal"] = frac is not None and seal_min_fraction <= frac <= seal_max_fraction
        attrs["red_fraction"] = None if frac is None else round(frac, 5)
        if size is None:
            try:
                from PIL import Image

                with Image.open(image_path) as im:
                    size = im.size
            except Exception:
                size = None
    if size:
        w, h = size
        attrs["vertical"] = h >= vertical_aspect * w
    return attrs


def near_duplicates(a: Sequence[str], b: Sequence[str], threshold: float = 0.9, min_len: int = 10,
                    prefix: int = 300, workers: int = 1) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity) with rapidfuzz's normalized Indel similarity of a[i] and b[j] >= threshold, on the
    first `prefix` characters of labels (whitespace removed) of at least `min_len` characters."""
    import numpy as np
    from rapidfuzz import fuzz, process

    def prep(texts):
        out = [re.sub(r"\s+", "", strip_markup(t or ""))[:prefix] for t in texts]
        return [i for i, t in enumerate(out) if len(t) >= min_len], out

    ia, pa = prep(a)
    ib, pb = prep(b)
    if not ia or not ib:
        return []
    m = process.cdist([pa[i] for i in ia], [pb[j] for j in ib], scorer=fuzz.ratio, score_cutoff=threshold * 100,
                      dtype=np.uint8, workers=workers)
    rows, cols = np.nonzero(m)
    return [(ia[r], ib[c], float(m[r, c]) / 100.0) for r, c in zip(rows.tolist(), cols.tolist())]


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))
    return float(v[k])


def split_stats(samples: Sequence[Any]) -> dict[str, Any]:
    """Counts of one split (lib.data Samples): samples, documents, label lengths, characters, scripts, elements."""
    lengths = [len(re.sub(r"\s+", "", strip_markup(s.text))) for s in samples]
    chars: Counter = Counter()
    for s in samples:
        chars.update(ch for ch in strip_markup(s.text) if not ch.isspace())
    mix = script_mix(s.text for s in samples)
    total = sum(mix.values()) or 1
    per_doc = Counter(s.doc_id for s in samples)
    return {
        "samples": len(samples),
        "documents": len(per_doc),
        "samples_per_document": {"mean": round(len(samples) / len(per_doc), 2) if per_doc else None,
                                 "max": max(per_doc.values()) if per_doc else None,
                                 "top": per_doc.most_common(10)},
        "length": {"mean": round(sum(lengths) / len(lengths), 2) if lengths else None, "median": _pct(lengths, 0.5),
                   "p90": _pct(lengths, 0.9), "min": min(lengths) if lengths else None,
                   "max": max(lengths) if lengths else None},
        "length_buckets": dict(Counter(length_bucket(s.text) for s in samples)),
        "chars_total": sum(chars.values()),
        "chars_unique": len(chars),
        "top_chars": chars.most_common(30),
        "script_mix": {k: mix.get(k, 0) for k in ("hant", "hans", "han", "latin", "digit", "punct", "other")},
        "script_mix_share": {k: round(mix.get(k, 0) / total, 4) for k in ("hant", "hans", "han", "latin", "digit",
                                                                          "punct", "other")},
        "label_scripts": dict(Counter(label_script(s.text) for s in samples)),
        "elements": dict(Counter(s.element or "(none)" for s in samples)),
        "_chars": chars,
        "_lengths": lengths,
        "_per_doc": per_doc,
    }


def char_coverage(train_chars: Counter, test_chars: Counter) -> dict[str, Any]:
    """How much of the test text uses characters never seen in training."""
    unseen = {c: n for c, n in test_chars.items() if c not in train_chars}
    occ = sum(test_chars.values()) or 1
    return {"test_unique_chars": len(test_chars), "unseen_unique_chars": len(unseen),
            "unseen_unique_share": round(len(unseen) / max(1, len(test_chars)), 4),
            "unseen_occurrences": sum(unseen.values()),
            "unseen_occurrence_share": round(sum(unseen.values()) / occ, 4),
            "covered_occurrence_share": round(1 - sum(unseen.values()) / occ, 4),
            "top_unseen": sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:30]}


def leakage(train: Sequence[Any], test: Sequence[Any], *, near_threshold: float = 0.9, min_len: int = 10,
            prefix: int = 300, workers: int = 1) -> dict[str, Any]:
    """Documents, images and (near-)identical labels shared between two splits."""
    train_docs = {s.doc_id for s in train}
    shared_docs = sorted({s.doc_id for s in test} & train_docs)
    train_images = {s.image_path for s in train}
    shared_images = sorted({s.image_path for s in test} & train_images)

    def norm(t):
        return re.sub(r"\s+", "", strip_markup(t or ""))

    train_labels: dict[str, int] = {}
    for i, s in enumerate(train):
        if len(norm(s.text)) >= min_len:
            train_labels.setdefault(norm(s.text), i)
    exact = [(train_labels[norm(s.text)], j) for j, s in enumerate(test) if norm(s.text) in train_labels]
    exact_set = {j for _, j in exact}
    near = [(i, j, sim) for i, j, sim in near_duplicates([s.text for s in train], [s.text for s in test],
                                                         threshold=near_threshold, min_len=min_len, prefix=prefix,
                                                         workers=workers) if j not in exact_set]
    near_test = sorted({j for _, j, _ in near})
    examples = [{"train": train[i].raw_image_path or train[i].image_path, "test": test[j].raw_image_path or test[j].image_path,
                 "similarity": round(sim, 3), "label": norm(test[j].text)[:60]} for i, j, sim in near[:20]]
    return {"shared_documents": shared_docs, "n_shared_documents": len(shared_docs),
            "test_samples_from_shared_documents": sum(1 for s in test if s.doc_id in train_docs),
            "shared_images": shared_images[:50], "n_shared_images": len(shared_images),
            "exact_duplicate_labels": len(exact_set), "near_duplicate_labels": len(near_test),
            "near_threshold": near_threshold, "near_examples": examples,
            "leaky_test_samples": len(exact_set | set(near_test) | {j for j, s in enumerate(test)
                                                                     if s.doc_id in train_docs or s.image_path in train_images})}


def layout_tags(value: Any) -> list[str]:
    """A sample's layout as a list of tags: a list/tuple as is, a dict's truthy keys, a string as one tag."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [str(k) for k, v in value.items() if v]
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def slice_table(groups: dict[str, list[int]], edits, len_gt, f1, exact, doc_ids: Sequence[Any], fail_mask,
                n_bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per group of sample positions: n, documents, micro CER (Σ edits / Σ |gt|) and macro bag F1 with 95 % CIs from
    the metric core's document-level bootstrap (lib.metrics.stats.bootstrap_ratios), exact match, failures."""
    import numpy as np

    from lib.metrics import stats

    edits, len_gt, f1, exact, fail_mask = (np.asarray(x, dtype=np.float64) for x in (edits, len_gt, f1, exact, fail_mask))
    out = {}
    for name, idx in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) == 0:
            continue
        codes = stats.group_codes([doc_ids[i] for i in idx])
        ones = np.ones(len(idx))
        ci = stats.bootstrap_ratios(codes, {"cer_micro": (edits[idx], len_gt[idx]), "bag_f1_macro": (f1[idx], ones)},
                                    n_bootstrap=n_bootstrap, seed=seed)
        den = float(len_gt[idx].sum())
        out[name] = {"n": int(len(idx)), "n_docs": int(codes.max()) + 1,
                     "cer_micro": float(edits[idx].sum() / den) if den > 0 else None,
                     "cer_ci95": ci["cer_micro"], "bag_f1_macro": float(f1[idx].mean()),
                     "bag_f1_ci95": ci["bag_f1_macro"], "exact_match": float(exact[idx].mean()),
                     "n_fail": int(fail_mask[idx].sum()), "fail_rate": float(fail_mask[idx].mean())}
    return out
