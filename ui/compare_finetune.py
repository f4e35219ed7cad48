"""Compare two result files on the same test set (e.g. before and after fine-tuning), sample by sample.

    python ui/compare_finetune.py --model1 results/evaluation/gemma3_before_sft.json \
        --model2 results/evaluation/gemma3_sft_lr2e4_ep5.json --data-root data --port 7863

Samples are paired by image path. At the top: the paired comparison from lib.utils.count_metric.paired_comparison
(difference of micro CER, model 2 − model 1, with a document-level bootstrap 95 % CI and a permutation p-value).
Per sample: which model is better, both predictions diffed against the ground truth (raw or normalized). Filters:
improved / regressed / same / both wrong / errors (pairs with an error are left out of the statistics and get no
verdict). Keys: ← / → (or k / j) move between pairs.

Only the images the two result files name are served (found in the folders of the result files and the
--data-root folders; never hidden files). Listens on 127.0.0.1 unless --server_name says otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from lib.config import field, parse_args
from lib.metrics.registry import pair_metrics


@dataclasses.dataclass
class CompareArgs:
    """Compare two OCR result files (Gradio)."""

    model1: str = field(help="result JSON of model 1 (the baseline, e.g. before fine-tuning)")
    model2: str = field(help="result JSON of model 2 (the candidate, e.g. after fine-tuning)")
    data_root: list[str] = field(default_factory=list, help="folder(s) images may be served from and relative image "
                                                             "paths start from (e.g. the dataset folder)")
    metric: str = field("cer", choices=[m.name for m in pair_metrics()],
                        help="metric of the paired comparison at the top")
    server_name: str = field("127.0.0.1", help="interface to listen on (0.0.0.0 exposes the app to your network)")
    server_port: int = field(7863, aliases=["port"], help="port (0 = any free port)")
    share: bool = field(False, help="create a public Gradio share link (sends traffic through gradio.live)")


def allowed_roots(args: CompareArgs) -> list[str]:
    return [str(Path(p).resolve()) for p in [os.path.dirname(os.path.abspath(args.model1)),
                                             os.path.dirname(os.path.abspath(args.model2)), *args.data_root]]


def build_app(args: CompareArgs):
    from lib.results import load_results
    from lib.ui.app import import_gradio
    from lib.ui.compare import (PAIR_FILTERS, filter_pairs, pair_counts, pair_rows, paired_stats,
                                paired_stats_markdown, pairs_table, render_pair, sort_pairs)
    from lib.ui.samples import ensure_scored, header_parts, rows_from_result
    from lib.ui.viewer import step

    from lib.ui.paths import ServedFiles

    gr = import_gradio()
    roots = ServedFiles(allowed_roots(args))  # folders images are looked up in; only the pairs' images are served
    from lib.results import ResultsError

    loaded = []
    for flag, path in (("--model1", args.model1), ("--model2", args.model2)):
        try:
            loaded.append(load_results(path))
        except ResultsError as exc:
            raise ResultsError(f"{flag}: {exc} (give a result JSON written by core/evaluate.py or "
                               f"core/count_score.py)") from None
    raw_a, raw_b = loaded
    a, rec_a = ensure_scored(raw_a)
    b, rec_b = ensure_scored(raw_b)
    rows_a = rows_from_result(a, original=raw_a if rec_a else None)
    rows_b = rows_from_result(b, original=raw_b if rec_b else None)
    pairs, only_a, only_b = pair_rows(a, b, rows_a, rows_b)
    names = (str(raw_a.get("model_name") or "Model 1"), str(raw_b.get("model_name") or "Model 2"))
    if names[0] == names[1]:
        names = (f"{names[0]} (1)", f"{names[1]} (2)")
    stats = paired_stats(a, b, metric=args.metric)
    stats_md = paired_stats_markdown(stats, names)
    counts = pair_counts(pairs)
    bases = [os.path.dirname(os.path.abspath(p)) for p in (args.model1, args.model2)] + [os.getcwd()]
    data = raw_a.get("data") if isinstance(raw_a.get("data"), dict) else {}
    if data.get("path"):
        bases.insert(0, os.path.dirname(os.path.abspath(str(data["path"]))))
    headers = ["#", "verdict", "CER 1", "CER 2", "Δ CER", "ground truth"]

    def view(order, pos, zoom, normalized=False):
        if pos is None:
            return [None, "*No pair matches the filter.*", "", "", "", "", "", gr.update(value="", visible=False),
                    gr.update(value=None)]
        pv = render_pair(pairs[pos], names, roots, bases, zoom=zoom, diff_profile="standard" if normalized else None)
        where = (f"**{order.index(pos) + 1} / {len(order)}** shown (of {len(pairs)} pairs)" if pos in order
                 else f"pair {pos} (outside the filter)")
        return [pos, where, pv.image, pv.info, pv.label, pv.diff_a, pv.diff_b,
                gr.update(value=pv.tables, visible=bool(pv.tables)), gr.update(value=pos)]

    def apply(which, sort_key, descending, search, zoom, normalized):
        which = (which or "all").split(" (")[0]
        chosen = sort_pairs(filter_pairs(pairs, which, (search or "").strip()), sort_key or "position",
                            bool(descending))
        order = [p.pos for p in chosen]
        return [order, pairs_table(chosen), f"{len(chosen)} of {len(pairs)} pairs",
                *view(order, order[0] if order else None, zoom, normalized)]

    def move(delta):
        def _move(order, pos, zoom, normalized):
            return view(order, step(order, pos, delta), zoom, normalized)
        return _move

    def jump(order, pos_now, value, zoom, normalized):
        try:
            pos = int(value)
            if not 0 <= pos < len(pairs):
                raise ValueError
        except (TypeError, ValueError):  # stay on the pair shown
            gr.Warning(f"no pair #{value}; pairs are numbered 0–{len(pairs) - 1}")
            return view(order, pos_now, zoom, normalized)
        return view(order, pos, zoom, normalized)

    def pick(order, pos_now, zoom, normalized, evt: gr.SelectData):
        return jump(order, pos_now, evt.row_value[0] if evt.row_value else None, zoom, normalized)

    pick.__annotations__["evt"] = gr.SelectData  # resolved here: `gr` is local, string annotations are not

    filter_choices = [f"{k} ({counts.get(k, len(pairs))})" for k in PAIR_FILTERS]
    with gr.Blocks(title="OCR model comparison", analytics_enabled=False) as demo:
        gr.Markdown("# OCR model comparison")
        order_st = gr.State([])
        pos_st = gr.State(None)
        with gr.Row():
            for label, path, raw, scored, rec in (("Model 1", args.model1, raw_a, a, rec_a),
                                                   ("Model 2", args.model2, raw_b, b, rec_b)):
                facts, scores = header_parts(raw, os.path.basename(path), scored if rec else None)
                with gr.Column():
                    gr.Markdown(f"**{label}**\n\n" + facts)
                    with gr.Accordion("overall scores (95 % CI)", open=False):
                        gr.Markdown(scores)
        gr.Markdown(stats_md + f"\n\n{len(pairs)} pairs · {only_a} only in model 1 · {only_b} only in model 2",
                    elem_id="paired-stats")
        with gr.Row(equal_height=True):
            which_rd = gr.Radio(filter_choices, value=filter_choices[0], label="show", elem_id="pair-filter",
                                scale=4)
            sort_dd = gr.Dropdown(["position", "delta", "cer_1", "cer_2"], value="position", label="sort by",
                                  elem_id="pair-sort", scale=1)
            desc_cb = gr.Checkbox(label="descending", value=False, elem_id="pair-desc", scale=1)
            search_tb = gr.Textbox(label="search (Enter)", elem_id="pair-search", scale=2)
        with gr.Row():
            with gr.Column(scale=3, min_width=320):
                count_md = gr.Markdown(elem_id="pair-count")
                table = gr.Dataframe(headers=headers, value=[], interactive=False, type="array",
                                     elem_id="pair-table", max_height=620)
            with gr.Column(scale=6):
                with gr.Row():
                    prev_btn = gr.Button("⬅ Previous", elem_id="btn-prev")
                    pos_md = gr.Markdown(elem_id="position")
                    next_btn = gr.Button("Next ➡", elem_id="btn-next", variant="primary")
                    jump_nb = gr.Number(label="jump to pair #", precision=0, minimum=0, elem_id="jump-number")
                    jump_btn = gr.Button("Go", elem_id="btn-jump")
                with gr.Row():
                    with gr.Column(scale=2):
                        zoom_sl = gr.Slider(25, 400, value=100, step=25, label="zoom % (click image: full size)")
                        image_html = gr.HTML(elem_id="sample-image")
                        normalized_cb = gr.Checkbox(label="diff the normalized text (as scored, profile "
                                                          "'standard')", value=False, elem_id="pair-normalized")
                    with gr.Column(scale=3):
                        info_md = gr.Markdown(elem_id="pair-info")
                        gt_tb = gr.Textbox(label="Ground truth", lines=3, max_lines=12, interactive=False,
                                           elem_id="gt-text")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown(f"**{names[0]}** vs ground truth")
                        diff_a = gr.HTML(elem_id="diff-1")
                    with gr.Column():
                        gr.Markdown(f"**{names[1]}** vs ground truth")
                        diff_b = gr.HTML(elem_id="diff-2")
                tables_html = gr.HTML(visible=False, elem_id="pair-tables")
        out_view = [pos_st, pos_md, image_html, info_md, gt_tb, diff_a, diff_b, tables_html, jump_nb]
        apply_in = [which_rd, sort_dd, desc_cb, search_tb, zoom_sl, normalized_cb]
        apply_out = [order_st, table, count_md, *out_view]
        nav_in = [order_st, pos_st, zoom_sl, normalized_cb]
        demo.load(apply, apply_in, apply_out)
        for comp in (which_rd, sort_dd, desc_cb):
            comp.change(apply, apply_in, apply_out)
        search_tb.submit(apply, apply_in, apply_out)
        prev_btn.click(move(-1), nav_in, out_view)
        next_btn.click(move(+1), nav_in, out_view)
        jump_btn.click(jump, [order_st, pos_st, jump_nb, zoom_sl, normalized_cb], out_view)
        jump_nb.submit(jump, [order_st, pos_st, jump_nb, zoom_sl, normalized_cb], out_view)
        table.select(pick, nav_in, out_view)
        redraw = lambda order, pos, zoom, normalized: view(order, pos, zoom, normalized)  # noqa: E731
        zoom_sl.release(redraw, nav_in, out_view)
        normalized_cb.change(redraw, nav_in, out_view)
    demo.served_files = roots
    for p in pairs:  # every image the two files name (and that may be served), nothing else in their folders
        for row in (p.a, p.b):
            roots.resolve(row.image_path, bases)
    return demo


def serve(args: CompareArgs, block: bool = True):
    from lib.ui.app import serve_app

    for flag, p in (("--model1", args.model1), ("--model2", args.model2)):
        if not Path(p).is_file():
            raise SystemExit(f"{flag} {p}: no such result file")
    return serve_app(build_app, args, allowed_roots(args), block=block)


def main(args: CompareArgs) -> dict:
    _, url = serve(args, block=True)
    return {"url": url}


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("compare_finetune.py"):  # a malformed --model1, a port in use: one line, exit 2
        main(parse_args(CompareArgs))
