"""Tag samples with element/layout attributes so results can be sliced (by eval_result_analysis.py, the UIs).

    # the original's use: merge an external layout file into every result JSON of a folder
    python core/add_layout.py --layout-file data/layout/layout.json --source-dir results/evaluation/test \
        --output-dir results/evaluation/test/layout
    # tag one dataset or result file with detectors / synthetic metadata
    python core/add_layout.py --input data/input/test.json --output data/input/test_layout.json

Each sample gets `layout` (a list of tags, also written as the original's `focus_layout`) and `layout_attrs`
(a dict, with `layout_source`). Where the tags come from, first match wins:
1. `--layout-file` (the original's format: {"results": [{"image_path", "focus_layout"}]}, or a list of such rows),
   matched on image_path (as written, then by file name);
2. synthetic metadata: rows written by core/synth_data.py carry `layout` tags and `element` already;
3. detectors (lib/analysis.py): table markup in the label, red-seal colour mass in the image, vertical text by
   aspect ratio. The label length bucket and script are added in every case.
`--dataset` joins element/doc_id/layout of a dataset file into result files that lack them (by image_path).
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, format_config, parse_args


@dataclasses.dataclass
class AddLayoutArgs:
    layout_file: str | None = field(None, help="external layout JSON ({'results': [{image_path, focus_layout}]})")
    source_dir: str | None = field(None, help="folder of result JSON files to enrich (every *.json in it)")
    output_dir: str | None = field(None, help="where enriched copies of --source-dir files go "
                                               "(default: <source-dir>/layout)")
    input: str | None = field(None, help="one dataset or result JSON file to enrich")
    output: str | None = field(None, help="output for --input (default: <input stem>_layout.json next to it)")
    dataset: str | None = field(None, help="dataset JSON whose element/doc_id/layout are joined into result samples")
    image_root: str | None = field(None, help="folder that relative image paths of result files are resolved against "
                                              "(default: the --dataset folder, else the result's data.path folder)")
    detect: bool = field(True, help="run the detectors on samples without a layout from the file or synthetic metadata")
    seal_min_fraction: float = field(0.0015, help="share of strongly red pixels from which an image has a seal")
    seal_max_fraction: float = field(0.45, help="above this share of red pixels it is a red background, not a seal")
    vertical_aspect: float = field(2.5, help="height/width at or above which a crop is vertical text")

    def __post_init__(self):
        if not self.source_dir and not self.input:
            raise ValueError("give --source-dir (a folder of result files) or --input (one dataset/result file)")


def enrich_rows(rows: list[dict], *, layout_index: dict, dataset_index: dict, base_dir, args: AddLayoutArgs) -> dict:
    """Add layout/focus_layout/layout_attrs to rows (dataset rows or result samples) in place; returns counts."""
    import os

    from lib.analysis import detect_layout, label_script, length_bucket
    from lib.data import resolve_image_path

    counts = {"layout_file": 0, "synthetic": 0, "detected": 0, "none": 0, "joined_from_dataset": 0}
    for row in rows:
        raw_path = row.get("image_path", row.get("img_path", "")) or ""
        label = row.get("label", row.get("ocr_results", row.get("ocr_text", ""))) or ""
        joined = dataset_index.get(raw_path) or dataset_index.get(os.path.basename(raw_path))
        if joined:
            for key in ("element", "doc_id", "layout", "synth"):
                if row.get(key) in (None, "", []) and joined.get(key) not in (None, ""):
                    row[key] = joined[key]
            counts["joined_from_dataset"] += 1
        attrs = {"length_bucket": length_bucket(label), "script": label_script(label)}
        external = layout_index.get(raw_path, layout_index.get(os.path.basename(raw_path)))
        if external is not None:
            tags = list(external) if isinstance(external, (list, tuple)) else [external]
            source = "layout_file"
        elif row.get("synth") and isinstance(row.get("layout"), list):
            tags = list(row["layout"])
            source = "synthetic"
        elif args.detect:
            image = resolve_image_path(raw_path, base_dir) if raw_path else None
            det = detect_layout(label, image if image and os.path.isfile(image) else None,
                                seal_min_fraction=args.seal_min_fraction,
                                seal_max_fraction=args.seal_max_fraction, vertical_aspect=args.vertical_aspect)
            attrs.update(det)
            tags = [k for k in ("table", "seal", "vertical") if det.get(k)]
            source = "detected"
        else:
            tags, source = [], "none"
        counts[source] += 1
        tags = [t for t in tags if not str(t).startswith(("len_", "script_"))]
        tags += [f"len_{attrs['length_bucket']}", f"script_{attrs['script']}"]
        if row.get("element"):
            attrs["element"] = row["element"]
        attrs["layout_source"] = source
        row["layout"] = tags
        row["focus_layout"] = tags
        row["layout_attrs"] = attrs
    return counts


def _load_layout_index(path: str | None) -> dict:
    import json
    import os

    if not path:
        return {}
    data = json.loads(open(path, encoding="utf-8").read())
    rows = data.get("results", data.get("samples", [])) if isinstance(data, dict) else data
    index = {}
    for r in rows:
        p = r.get("image_path", r.get("img_path"))
        if p:
            value = r.get("focus_layout", r.get("layout", []))
            index[p] = value
            index.setdefault(os.path.basename(p), value)
    return index


def _load_dataset_index(path: str | None) -> dict:
    import os

    from lib.data import load_samples

    if not path:
        return {}
    index = {}
    for s in load_samples(path):
        row = {"element": s.element, "doc_id": s.doc_id, "layout": s.layout, "synth": s.extra.get("synth")}
        index[s.raw_image_path] = row
        index.setdefault(os.path.basename(s.raw_image_path), row)
    return index


def main(args: AddLayoutArgs) -> dict:
    import json
    from pathlib import Path

    from lib.results import atomic_write_json

    print(format_config(args))
    layout_index = _load_layout_index(args.layout_file)
    if args.layout_file:
        print(f"loaded layout for {len(layout_index)} image keys (paths and file names) from {args.layout_file}")
    dataset_index = _load_dataset_index(args.dataset)
    jobs = []
    if args.source_dir:
        out_dir = Path(args.output_dir or Path(args.source_dir) / "layout")
        for f in sorted(Path(args.source_dir).glob("*.json")):
            jobs.append((f, out_dir / f.name))
    if args.input:
        inp = Path(args.input)
        jobs.append((inp, Path(args.output) if args.output else inp.with_name(inp.stem + "_layout.json")))
    summary = {"files": []}
    for src, dst in jobs:
        data = json.loads(src.read_text(encoding="utf-8"))
        is_result = isinstance(data, dict) and isinstance(data.get("samples"), list)
        rows = data["samples"] if is_result else (data if isinstance(data, list) else data.get("samples", []))
        if args.image_root:
            base = Path(args.image_root)
        elif args.dataset:
            base = Path(args.dataset).parent
        elif is_result and isinstance(data.get("data"), dict) and data["data"].get("path"):
            base = Path(data["data"]["path"]).parent
        else:
            base = src.parent
        counts = enrich_rows(rows, layout_index=layout_index, dataset_index=dataset_index, base_dir=base, args=args)
        total = len(rows)
        matched = counts["layout_file"]
        if is_result:
            data["layout_metadata"] = {"total_samples": total, "matched_samples": matched,
                                       "unmatched_samples": total - matched,
                                       "match_rate": matched / total if total else 0, "sources": counts}
        atomic_write_json(data, dst)
        print(f"{src.name}: {total} samples; layout file matched {matched}, synthetic {counts['synthetic']}, "
              f"detected {counts['detected']} -> {dst}")
        summary["files"].append({"source": str(src), "output": str(dst), "total": total, **counts})
    if not jobs:
        print("no JSON files found")
    return summary


if __name__ == "__main__":
    main(parse_args(AddLayoutArgs, sys.argv[1:]))
