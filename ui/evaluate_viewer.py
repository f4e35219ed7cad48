"""Browse an evaluation result file next to its images: per-sample scores, a character-level diff of the
prediction against the ground truth, sorting, filters, search, worst-k and per-element slices with CIs.

    python ui/evaluate_viewer.py --eval_dir results/evaluation --data-root data
    python ui/evaluate_viewer.py --eval_dir results/evaluation --initial_file gemma3_sft.json --server_port 7861

Result files are read with lib.results.load_results (ours and the original project's). Images are served only
from --eval_dir and the --data-root folders (Gradio `allowed_paths`); an image elsewhere is not shown, and the page
says which flag to pass. Listens on 127.0.0.1 unless --server_name says otherwise. Keys: ← / → (or k / j) move
between samples.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from lib.config import field, parse_args

SLICE_BY = ("element", "layout", "doc_id")


@dataclasses.dataclass
class ViewerArgs:
    """OCR evaluation results viewer (Gradio)."""

    eval_dir: str = field("results/evaluation", help="folder of result JSON files (searched recursively)")
    initial_file: str | None = field(None, help="result file to open first (name inside --eval_dir)")
    data_root: list[str] = field(default_factory=list, help="folder(s) images may be served from and relative image "
                                                             "paths start from (e.g. the dataset folder)")
    server_name: str = field("127.0.0.1", help="interface to listen on (0.0.0.0 exposes the app to your network)")
    server_port: int = field(7860, aliases=["port"], help="port (0 = any free port)")
    share: bool = field(False, help="create a public Gradio share link (sends traffic through gradio.live)")


def allowed_roots(args: ViewerArgs) -> list[str]:
    return [str(Path(p).resolve()) for p in [args.eval_dir, *args.data_root]]


def build_app(args: ViewerArgs):
    """The Gradio Blocks of the viewer (not launched)."""
    from lib.ui.app import import_gradio
    from lib.ui.paths import ServedFiles, UnsafePathError
    from lib.ui.samples import (ERROR_FILTERS, ROWS_TABLE_HEADERS, RowFilter, config_json, filter_rows, header_parts,
                                rows_table,
                                slice_table, sort_rows, worst_k)
    from lib.ui.viewer import (jump_target, open_result, position_text, register_images, render_sample,
                               result_names, step)

    gr = import_gradio()
    from lib.results import ResultsError

    roots = ServedFiles(allowed_roots(args))  # the folders images are looked up in; only named images are served
    names = result_names(args.eval_dir)
    initial = args.initial_file
    if initial and initial not in names:  # also accept a path (absolute or from the working dir) inside eval_dir
        rel = os.path.relpath(os.path.abspath(initial), os.path.abspath(args.eval_dir)).replace(os.sep, "/")
        initial = rel if rel in names else initial
    first = initial if initial in names else (names[0] if names else None)
    if args.initial_file and initial not in names:
        print(f"--initial_file {args.initial_file!r} is not a result file in {args.eval_dir}; opening {first}",
              file=sys.stderr)
    list_headers = ROWS_TABLE_HEADERS

    def view_outputs(loaded, order, pos, zoom, normalized):
        if loaded is None or pos is None:
            empty = "" if loaded is None else "*No sample matches the filters.*"
            return [pos, position_text(order or [], None, 0) if loaded else "", "", empty, "", "", "", "",
                    gr.update(value="", visible=False)]
        row = loaded.rows[pos]
        view = render_sample(loaded, row, roots, zoom=zoom, diff_profile="standard" if normalized else None)
        tables = gr.update(value=view.tables, visible=bool(view.tables))
        return [pos, position_text(order, pos, len(loaded.rows)), view.image, view.info, view.legend, view.diff,
                view.label, view.prediction, tables]

    def load(name):
        if not name:
            return (None, "No result files found in " + args.eval_dir, "", {}, gr.update(choices=[]),
                    gr.update(choices=[]))
        try:
            loaded = open_result(args.eval_dir, name)
        except (UnsafePathError, ResultsError) as exc:
            return None, f"⚠ {exc}", "", {}, gr.update(choices=[]), gr.update(choices=[])
        register_images(loaded, roots)
        facts, scores = header_parts(loaded.result, loaded.name, loaded.scored if loaded.recomputed else None)
        elements = sorted({r.element or "(none)" for r in loaded.rows})
        layouts = sorted({r.layout or "(none)" for r in loaded.rows})
        return (loaded, facts, scores, config_json(loaded.result), gr.update(choices=elements, value=[]),
                gr.update(choices=layouts, value=[]))

    def apply(loaded, elements, layouts, errors, min_len, max_len, search, sort_key, descending, zoom, normalized):
        if loaded is None:
            return [[], "", [], *view_outputs(None, [], None, zoom, normalized)]
        flt = RowFilter(elements=elements or (), layouts=layouts or (),
                        min_len=int(min_len) if min_len not in (None, "") else None,
                        max_len=int(max_len) if max_len not in (None, "") and int(max_len) > 0 else None,
                        errors=errors or "all", search=(search or "").strip())
        rows = sort_rows(filter_rows(loaded.rows, flt), sort_key or "position", bool(descending))
        order = [r.pos for r in rows]
        count = f"{len(rows)} of {len(loaded.rows)} samples match"
        pos = order[0] if order else None
        return [order, count, rows_table(rows), *view_outputs(loaded, order, pos, zoom, normalized)]

    def move(delta):
        def _move(loaded, order, pos, zoom, normalized):
            return view_outputs(loaded, order, step(order, pos, delta), zoom, normalized)
        return _move

    def jump(loaded, order, value, zoom, normalized):
        if loaded is None:
            return view_outputs(None, order, None, zoom, normalized)
        try:
            pos = jump_target(loaded, value)
        except ValueError as exc:
            gr.Warning(str(exc))
            return view_outputs(loaded, order, order[0] if order else None, zoom, normalized)
        return view_outputs(loaded, order, pos, zoom, normalized)

    def pick(loaded, order, zoom, normalized, evt: gr.SelectData):
        value = evt.row_value[0] if evt.row_value else None
        return jump(loaded, order, value, zoom, normalized)

    pick.__annotations__["evt"] = gr.SelectData  # resolved here: `gr` is local, string annotations are not

    def redraw(loaded, order, pos, zoom, normalized):
        return view_outputs(loaded, order, pos, zoom, normalized)

    worst_headers = ["#", "element", "CER", "F1", "NED", "ground truth"]

    def worst(loaded, k, metric):
        if loaded is None:
            return []
        return rows_table(worst_k(loaded.rows, int(k or 10), metric or "cer"))

    def slices(loaded, by):
        if loaded is None:
            return []
        out = []
        for s in slice_table(loaded.scored, by=by or "element"):
            ci = s.get("CER 95% CI")
            out.append([s[by or "element"], s["n"], s["errors"],
                        "—" if s.get("CER (micro)") is None else f"{s['CER (micro)']:.4f}",
                        "—" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]",
                        "—" if s.get("F1") is None else f"{s['F1']:.4f}"])
        return out

    def refresh(current):
        new = result_names(args.eval_dir)
        return gr.update(choices=new, value=current if current in new else (new[0] if new else None))

    with gr.Blocks(title="OCR evaluation viewer", analytics_enabled=False) as demo:
        gr.Markdown("# OCR evaluation viewer")
        loaded_st = gr.State(None)
        order_st = gr.State([])
        pos_st = gr.State(None)
        with gr.Row():
            file_dd = gr.Dropdown(choices=names, value=first, label=f"Result file (in {args.eval_dir})", scale=5,
                                  elem_id="file-select")
            refresh_btn = gr.Button("↻ Refresh list", scale=1)
        with gr.Row():
            with gr.Column(scale=3):
                header_md = gr.Markdown(elem_id="run-header")
                with gr.Accordion("Run config (resolved config, prompt, decoding, data, timings)", open=False):
                    config_js = gr.JSON()
            with gr.Column(scale=2, min_width=480):
                scores_md = gr.Markdown(elem_id="run-scores")
        with gr.Row(equal_height=True):
            element_dd = gr.Dropdown(label="element", multiselect=True, choices=[], elem_id="flt-element", scale=2,
                                     min_width=140)
            layout_dd = gr.Dropdown(label="layout", multiselect=True, choices=[], elem_id="flt-layout", scale=2,
                                    min_width=140)
            errors_dd = gr.Dropdown(label="show", choices=list(ERROR_FILTERS), value="all", elem_id="flt-errors",
                                    scale=2, min_width=150)
            min_len = gr.Number(label="min GT length", precision=0, value=None, minimum=0, scale=1, min_width=90,
                                elem_id="flt-min-len")
            max_len = gr.Number(label="max (0 = any)", precision=0, value=None, minimum=0, scale=1, min_width=90,
                                elem_id="flt-max-len")
            search_tb = gr.Textbox(label="search text / path (Enter)", elem_id="flt-search", scale=2, min_width=150)
            sort_dd = gr.Dropdown(label="sort by", choices=["position", "cer", "f1", "ned", "length"],
                                  value="position", elem_id="sort-key", scale=1, min_width=130)
            desc_cb = gr.Checkbox(label="descending", value=False, elem_id="sort-desc", scale=1, min_width=100)
        with gr.Row():
            with gr.Column(scale=3, min_width=320):
                count_md = gr.Markdown(elem_id="match-count")
                table = gr.Dataframe(headers=list_headers, value=[], interactive=False, type="array",
                                     elem_id="sample-table", max_height=620, wrap=False)
            with gr.Column(scale=5):
                with gr.Row():
                    prev_btn = gr.Button("⬅ Previous", elem_id="btn-prev", scale=1)
                    pos_md = gr.Markdown(elem_id="position")
                    next_btn = gr.Button("Next ➡", elem_id="btn-next", variant="primary", scale=1)
                    jump_nb = gr.Number(label="jump to sample #", precision=0, minimum=0, scale=1,
                                        elem_id="jump-number")
                    jump_btn = gr.Button("Go", scale=0, elem_id="btn-jump")
                with gr.Row():
                    with gr.Column(scale=1):
                        zoom_sl = gr.Slider(25, 400, value=100, step=25, label="zoom % (click image: full size)",
                                            elem_id="zoom")
                        image_html = gr.HTML(elem_id="sample-image")
                    with gr.Column(scale=1):
                        info_md = gr.Markdown(elem_id="sample-info")
                        normalized_cb = gr.Checkbox(label="diff the normalized text (as scored, profile 'standard')",
                                                    value=False)
                        legend_html = gr.HTML()
                        diff_out = gr.HTML(elem_id="sample-diff")
                with gr.Row():
                    gt_tb = gr.Textbox(label="Ground truth", lines=6, max_lines=20, interactive=False,
                                       elem_id="gt-text")
                    pred_tb = gr.Textbox(label="Prediction", lines=6, max_lines=20, interactive=False,
                                         elem_id="pred-text")
                tables_html = gr.HTML(visible=False, elem_id="sample-tables")
        with gr.Accordion("Worst samples", open=True):
            with gr.Row():
                k_nb = gr.Number(label="k", value=10, precision=0, minimum=1)
                worst_metric = gr.Dropdown(label="by", choices=["cer", "ned", "f1"], value="cer")
            worst_df = gr.Dataframe(headers=worst_headers, value=[], interactive=False, type="array",
                                    elem_id="worst-table")
        with gr.Accordion("Slices (n, micro CER with 95 % bootstrap CI, mean F1)", open=True):
            slice_by = gr.Dropdown(label="slice by", choices=list(SLICE_BY), value="element")
            slice_df = gr.Dataframe(headers=["slice", "n", "errors", "CER", "CER 95% CI", "F1"], value=[],
                                    interactive=False, type="array", elem_id="slice-table")

        filters = [loaded_st, element_dd, layout_dd, errors_dd, min_len, max_len, search_tb, sort_dd, desc_cb,
                   zoom_sl, normalized_cb]
        view = [pos_st, pos_md, image_html, info_md, legend_html, diff_out, gt_tb, pred_tb, tables_html]
        apply_out = [order_st, count_md, table, *view]

        load_ev = file_dd.change(load, [file_dd], [loaded_st, header_md, scores_md, config_js, element_dd, layout_dd])
        load_ev.then(apply, filters, apply_out).then(worst, [loaded_st, k_nb, worst_metric], [worst_df]).then(
            slices, [loaded_st, slice_by], [slice_df])
        demo.load(load, [file_dd], [loaded_st, header_md, scores_md, config_js, element_dd, layout_dd]).then(
            apply, filters, apply_out).then(worst, [loaded_st, k_nb, worst_metric], [worst_df]).then(
            slices, [loaded_st, slice_by], [slice_df])
        for comp in (element_dd, layout_dd, errors_dd, sort_dd, desc_cb):
            comp.change(apply, filters, apply_out)
        for comp in (min_len, max_len, search_tb):
            comp.submit(apply, filters, apply_out)
        nav_in = [loaded_st, order_st, pos_st, zoom_sl, normalized_cb]
        prev_btn.click(move(-1), nav_in, view)
        next_btn.click(move(+1), nav_in, view)
        jump_btn.click(jump, [loaded_st, order_st, jump_nb, zoom_sl, normalized_cb], view)
        jump_nb.submit(jump, [loaded_st, order_st, jump_nb, zoom_sl, normalized_cb], view)
        table.select(pick, [loaded_st, order_st, zoom_sl, normalized_cb], view)
        worst_df.select(pick, [loaded_st, order_st, zoom_sl, normalized_cb], view)
        zoom_sl.change(redraw, nav_in, view)
        normalized_cb.change(redraw, nav_in, view)
        k_nb.submit(worst, [loaded_st, k_nb, worst_metric], [worst_df])
        worst_metric.change(worst, [loaded_st, k_nb, worst_metric], [worst_df])
        slice_by.change(slices, [loaded_st, slice_by], [slice_df])
        refresh_btn.click(refresh, [file_dd], [file_dd]).then(  # re-read the file too: it may have been rewritten
            load, [file_dd], [loaded_st, header_md, scores_md, config_js, element_dd, layout_dd]).then(
            apply, filters, apply_out).then(worst, [loaded_st, k_nb, worst_metric], [worst_df]).then(
            slices, [loaded_st, slice_by], [slice_df])
    demo.served_files = roots
    if first:  # the first file's images are servable before any page has loaded it
        try:
            register_images(open_result(args.eval_dir, first), roots)
        except (UnsafePathError, ResultsError):
            pass  # the page says why when it opens the file
    return demo


def serve(args: ViewerArgs, block: bool = True):
    """Build and launch; returns (demo, url)."""
    from lib.ui.app import serve_app

    if not Path(args.eval_dir).is_dir():
        raise SystemExit(f"--eval_dir {args.eval_dir} is not a folder (point it at the folder of result JSON files)")
    return serve_app(build_app, args, allowed_roots(args), block=block)


def main(args: ViewerArgs) -> dict:
    _, url = serve(args, block=True)
    return {"url": url}


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("evaluate_viewer.py"):  # a bad flag value, a port in use: one line, exit 2
        main(parse_args(ViewerArgs))
