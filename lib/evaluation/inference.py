"""OCR without labels: every image and every PDF page (rasterised at a stated DPI with pypdfium2) in a folder, with
any backend, written as `<name>.txt` and `<name>.json` per page plus one combined JSON. Runs through the same
journal and runner as evaluation, so an interrupted run continues where it stopped.

Not for: scoring (there are no labels; use core/evaluate.py for that).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from lib.data import Sample
from lib.evaluation.journal import Journal
from lib.evaluation.postprocess import apply_postprocessors, resolve_postprocessors
from lib.evaluation.runner import latency_summary, run_samples
from lib.results import atomic_write_json

__all__ = ["IMAGE_EXTS", "collect_inputs", "rasterize_pdf", "run_inference"]

log = logging.getLogger(__name__)
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def collect_inputs(path: str | Path, recursive: bool = False) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"input not found: {p} (pass a folder of images/PDFs, or one file)")
    it = p.rglob("*") if recursive else p.glob("*")
    return sorted(f for f in it if f.is_file() and f.suffix.lower() in IMAGE_EXTS | {".pdf"})


def rasterize_pdf(pdf: Path, out_dir: Path, dpi: int) -> list[Path]:
    """PNG per page at `dpi` (cached: pages already rendered at this DPI are reused)."""
    import pypdfium2 as pdfium

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = pdfium.PdfDocument(str(pdf))
    pages = []
    try:
        for i in range(len(doc)):
            target = out_dir / f"{pdf.stem}_p{i + 1:04d}_{dpi}dpi.png"
            if not target.exists():
                page = doc[i]
                img = page.render(scale=dpi / 72.0).to_pil()
                tmp = target.with_suffix(".tmp.png")
                img.save(tmp)
                tmp.replace(target)
                page.close()
            pages.append(target)
    finally:
        doc.close()
    return pages


def run_inference(args: Any) -> dict:
    from lib.evaluation.args import load_eval_prompt, make_backend

    t0 = time.perf_counter()
    in_root = Path(args.input)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = in_root if in_root.is_dir() else in_root.parent
    pages: list[dict] = []
    for f in collect_inputs(in_root, args.recursive):
        rel = f.relative_to(base)
        if f.suffix.lower() == ".pdf":
            try:
                rendered = rasterize_pdf(f, out_dir / "_pages" / rel.parent, args.dpi)
            except Exception as exc:  # a broken PDF is reported, the rest goes on
                log.error("cannot rasterise %s: %s", f, exc)
                pages.append({"source": str(f), "page": None, "image": str(f), "stem": str(rel.with_suffix("")),
                              "render_error": f"cannot rasterise PDF ({type(exc).__name__}: {exc})"})
                continue
            for i, img in enumerate(rendered, 1):
                pages.append({"source": str(f), "page": i, "image": str(img), "stem": f"{rel.with_suffix('')}_p{i:04d}"})
        else:
            pages.append({"source": str(f), "page": None, "image": str(f), "stem": str(rel.with_suffix(""))})
    if not pages:
        raise FileNotFoundError(f"no images or PDFs in {in_root} (extensions: {', '.join(sorted(IMAGE_EXTS))}, .pdf)")
    log.info("%d page(s) from %s", len(pages), in_root)

    samples = [Sample(image_path=p["image"] if "render_error" not in p else str(out_dir / "_missing"), text="",
                      index=i, doc_id=p["source"], raw_image_path=p["image"]) for i, p in enumerate(pages)]
    prompt, _ = load_eval_prompt(args)
    backend = make_backend(args, prompt)
    post = resolve_postprocessors(args.postprocess, backend.default_postprocessors)
    inputs_hash = hashlib.sha256("\n".join(p["image"] for p in pages).encode()).hexdigest()[:16]
    journal = Journal(out_dir / "inference.journal.jsonl", {**backend.identity(), "inputs_hash": inputs_hash,
                                                             "dpi": args.dpi}).open(resume=args.resume)
    stats = run_samples(samples, backend, journal, workers=args.workers, batch_size=args.batch_size,
                        progress=args.progress, desc=f"OCR ({args.mode})")
    journal.close()
    backend.close()

    model = getattr(backend, "model_name", None) or backend.identity().get("model")
    combined = []
    for p, s in zip(pages, samples):
        rec = journal.records.get(s.index) or {}
        raw = rec.get("raw_prediction")
        error = p.get("render_error") or rec.get("error")
        text = None if error else apply_postprocessors(raw or "", post)
        entry = {"source": p["source"], "page": p["page"], "image_path": p["image"], "image_name": Path(p["image"]).name,
                 "ocr_result": text, "error": error, "latency_s": rec.get("latency_s"), "model_name": model}
        if raw is not None and raw != text:
            entry["raw_prediction"] = raw
        target = out_dir / p["stem"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if "txt" in args.formats and text is not None:
            target.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
        if "json" in args.formats:
            atomic_write_json(entry, target.with_suffix(".json"))
        combined.append(entry)
    summary = {"model_name": model, "backend": args.mode, "n_pages": len(pages),
               "n_errors": sum(1 for e in combined if e["error"]), "postprocessors": post, "dpi": args.dpi,
               "prompt": prompt.to_dict(), "timings": {"wall_s": round(time.perf_counter() - t0, 3),
                                                       "samples_per_s": round(stats.samples_per_s, 3),
                                                       **latency_summary([{"latency_s": e["latency_s"], "error": e["error"]} for e in combined])},
               "results": combined}
    if args.output_file:
        atomic_write_json(summary, args.output_file)
    log.info("%d pages, %d errors; text in %s", len(pages), summary["n_errors"], out_dir)
    return summary
