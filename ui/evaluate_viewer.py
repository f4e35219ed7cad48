"""Browse an evaluation result file next to its images: per-sample scores, a character-level diff of the
prediction against the ground truth, sorting, filters, search, worst-k, slices with CIs, the top character
confusions (click one to see its samples), and a review of each sample (flag, note, corrected ground truth).

    python ui/evaluate_viewer.py --eval_dir results/evaluation --data-root data
    python ui/evaluate_viewer.py --eval_dir results/evaluation --initial_file gemma3_sft.json --server_port 7861

Result files are read with lib.results.load_results (ours and the original project's); the file list is rescanned
(newest first, with each file's model and CER). The URL holds the file, the sample and the filters
(`?file=a.json&sample=7&show=errors+only`): copy it to share the view. Reviews are saved to a sidecar next to the
dataset (`<data>.review.json`, see lib/review.py), never into the data; `core/evaluate.py --skip-flagged gt_wrong`,
`core/count_score.py --skip-flagged ...` and `core/split_dataset.py --skip-flagged ... --apply-corrections` use it.
Only the images the result files name are served (found in --eval_dir and the --data-root folders; never hidden
files). Listens on 127.0.0.1 unless --server_name says otherwise. Keys: ← / → (or k / j) move between samples.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from lib.config import field, parse_args

SLICE_BY = ("element", "layout", "doc_id")

# Writes the view's query string into the address bar (no reload), so the URL always reopens what is shown.
URL_JS = "(q) => { if (typeof q === 'string' && q.startsWith('?')) { history.replaceState(null, '', q); } return []; }"


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
    rescan_seconds: float = field(10.0, help="how often the file list is rescanned for new result files (0 = only "
                                             "with the Refresh button)")


def allowed_roots(args: ViewerArgs) -> list[str]:
    return [str(Path(p).resolve()) for p in [args.eval_dir, *args.data_root]]


def build_app(args: ViewerArgs):
    """The Gradio Blocks of the viewer (not launched)."""
    from lib.results import ResultsError
    from lib.review import FLAGS, ReviewError, export_reviewed
    from lib.ui.app import import_gradio
    from lib.ui.paths import ServedFiles, UnsafePathError
    from lib.ui.samples import (ERROR_FILTERS, REVIEW_FILTERS, ROWS_TABLE_HEADERS, RowFilter, config_json,
                                filter_rows, header_parts, row_confusions, rows_table, slice_table, sort_rows,
                                top_confusions, worst_k)
    from lib.ui.viewer import (jump_target, open_result, parse_confusion, parse_view_query, position_text,
                               register_images, render_sample, result_choices, review_for, step, view_query)

    gr = import_gradio()
    roots = ServedFiles(allowed_roots(args))  # the folders images are looked up in; only named images are served
    choices = result_choices(args.eval_dir)
    names = [n for _, n in choices]
    initial = args.initial_file
    if initial and initial not in names:  # also accept a path (absolute or from the working dir) inside eval_dir
        rel = os.path.relpath(os.path.abspath(initial), os.path.abspath(args.eval_dir)).replace(os.sep, "/")
        initial = rel if rel in names else initial
    first = initial if initial in names else (names[0] if names else None)
    if args.initial_file and initial not in names:
        print(f"--initial_file {args.initial_file!r} is not a result file in {args.eval_dir}; opening {first}",
              file=sys.stderr)
    flag_labels = {"gt_wrong": "ground truth wrong", "model_wrong": "model wrong", "ambiguous": "ambiguous"}
    flag_choices = [(flag_labels[f], f) for f in FLAGS]

    # ------------------------------------------------------------------------------------------ one file
    def review_summary(loaded):
        if loaded is None or loaded.review is None:
            return ""
        c = loaded.review.counts()
        where = (f"`{loaded.review.path}` (next to the dataset `{loaded.data_file.name}`)" if loaded.data_file
                 else f"`{loaded.review.path}` (the result names no dataset in the served folders)")
        return (f"Review sidecar {where}: " + " · ".join(f"{flag_labels.get(k, k)} {v}" for k, v in c.items())
                + " — `core/evaluate.py --skip-flagged gt_wrong` and `core/split_dataset.py --skip-flagged "
                  "gt_wrong --apply-corrections` read it")

    def confusion_rows(loaded):
        if loaded is None:
            return []
        return [[f"{g}→{p}", n, k] for g, p, n, k in top_confusions(loaded.confusions or {}, 20)]

    def open_view(name, want):
        """Outputs of `file_outputs` for file `name` with the filters in `want` (from a URL) applied."""
        keep = gr.update()
        if not name:
            return [None, "No result files found in " + args.eval_dir, "", {}, gr.update(choices=[]),
                    gr.update(choices=[]), keep, keep, "", keep, keep, keep, None, "", []]
        try:
            loaded = open_result(args.eval_dir, name)
        except (UnsafePathError, ResultsError) as exc:
            return [None, f"⚠ {exc}", "", {}, gr.update(choices=[]), gr.update(choices=[]), keep, keep, "", keep,
                    keep, keep, None, "", []]
        register_images(loaded, roots)
        try:
            loaded.review, loaded.data_file = review_for(loaded, roots)
        except ReviewError as exc:
            gr.Warning(str(exc))
        loaded.confusions = row_confusions(loaded.rows)
        facts, scores = header_parts(loaded.result, loaded.name, loaded.scored if loaded.recomputed else None)
        elements = sorted({r.element or "(none)" for r in loaded.rows})
        layouts = sorted({r.layout or "(none)" for r in loaded.rows})
        pick = lambda key, default: want[key] if key in want else default  # noqa: E731
        confusion = want.get("confusion")
        return [loaded, facts, scores, config_json(loaded.result),
                gr.update(choices=elements, value=[e for e in want.get("element", []) if e in elements]),
                gr.update(choices=layouts, value=[x for x in want.get("layout", []) if x in layouts]),
                pick("show", keep), pick("review", keep), f"{confusion[0]}→{confusion[1]}" if confusion else "",
                pick("q", keep), pick("sort", keep), pick("desc", keep), want.get("sample"), review_summary(loaded),
                confusion_rows(loaded)]

    def init(request: gr.Request):
        want = parse_view_query(getattr(request, "query_params", None))
        name = want.get("file") if want.get("file") in names else first
        if want.get("file") and want["file"] not in names:
            gr.Warning(f"the link names {want['file']!r}, which is not a result file in {args.eval_dir}")
        return [gr.update(value=name), *open_view(name, want)]

    init.__annotations__["request"] = gr.Request  # resolved here: `gr` is local, string annotations are not

    def load_file(name):  # a file picked by hand: its own elements/layouts, the other filters stay
        return open_view(name, {})

    # ------------------------------------------------------------------------------------------ one sample
    def view_outputs(loaded, order, pos, zoom, normalized, flt):
        flt = flt or {}
        hidden = gr.update(value="", visible=False)
        if loaded is None or pos is None:
            empty = "" if loaded is None else "*No sample matches the filters.*"
            link = "?" + view_query(loaded.name if loaded else None, None, **flt)
            return [pos, position_text(order or [], None, 0) if loaded else "", "", empty, "", "", "", "", hidden,
                    gr.update(value=None), link, gr.update(value=[]), "", "", ""]
        row = loaded.rows[pos]
        view = render_sample(loaded, row, roots, zoom=zoom, diff_profile="standard" if normalized else None)
        tables = gr.update(value=view.tables, visible=bool(view.tables))
        item = loaded.review.get(row.image_path) if loaded.review is not None else None
        status = ""
        if item is not None and item.updated:
            status = f"reviewed {item.updated}" + (" · ground truth corrected" if item.label is not None else "")
        link = "?" + view_query(loaded.name, pos, **flt)
        return [pos, position_text(order, pos, len(loaded.rows)), view.image, view.info, view.legend, view.diff,
                view.label, view.prediction, tables, gr.update(value=pos), link,
                gr.update(value=list(item.flags) if item else []), item.note if item else "",
                item.label if item is not None and item.label is not None else row.label, status]

    def apply(loaded, elements, layouts, errors, review, confusion, min_len, max_len, search, sort_key, descending,
              zoom, normalized, target):
        flt_state = {"elements": list(elements or []), "layouts": list(layouts or []), "errors": errors or "all",
                     "review": review or "all", "search": (search or "").strip(), "sort_key": sort_key or "position",
                     "descending": bool(descending), "confusion": parse_confusion(confusion)}
        if loaded is None:
            return [[], "", [], flt_state, None, *view_outputs(None, [], None, zoom, normalized, flt_state)]
        flt = RowFilter(elements=elements or (), layouts=layouts or (),
                        min_len=int(min_len) if min_len not in (None, "") else None,
                        max_len=int(max_len) if max_len not in (None, "") and int(max_len) > 0 else None,
                        errors=errors or "all", search=flt_state["search"], review=flt_state["review"],
                        reviews=loaded.review.items if loaded.review is not None else {},
                        confusion=flt_state["confusion"], confusions=loaded.confusions)
        rows = sort_rows(filter_rows(loaded.rows, flt), sort_key or "position", bool(descending))
        order = [r.pos for r in rows]
        count = f"{len(rows)} of {len(loaded.rows)} samples match"
        if flt_state["confusion"]:
            count += f" (substitution {flt_state['confusion'][0]}→{flt_state['confusion'][1]})"
        pos = target if isinstance(target, int) and 0 <= target < len(loaded.rows) else (order[0] if order else None)
        return [order, count, rows_table(rows), flt_state, None,
                *view_outputs(loaded, order, pos, zoom, normalized, flt_state)]

    def move(delta):
        def _move(loaded, order, pos, zoom, normalized, flt):
            return view_outputs(loaded, order, step(order, pos, delta), zoom, normalized, flt)
        return _move

    def jump(loaded, order, pos_now, value, zoom, normalized, flt):
        if loaded is None:
            return view_outputs(None, order, None, zoom, normalized, flt)
        try:
            pos = jump_target(loaded, value)
        except ValueError as exc:  # stay on the sample shown
            gr.Warning(str(exc))
            return view_outputs(loaded, order, pos_now, zoom, normalized, flt)
        return view_outputs(loaded, order, pos, zoom, normalized, flt)

    def pick(loaded, order, pos_now, zoom, normalized, flt, evt: gr.SelectData):
        value = evt.row_value[0] if evt.row_value else None
        return jump(loaded, order, pos_now, value, zoom, normalized, flt)

    pick.__annotations__["evt"] = gr.SelectData

    def pick_confusion(loaded, evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else ""

    pick_confusion.__annotations__["evt"] = gr.SelectData

    def redraw(loaded, order, pos, zoom, normalized, flt):
        return view_outputs(loaded, order, pos, zoom, normalized, flt)

    def save_review(loaded, order, pos, flags, note, label, zoom, normalized, flt):
        if loaded is None or pos is None or loaded.review is None:
            gr.Warning("no sample to review")
            return [*view_outputs(loaded, order, pos, zoom, normalized, flt), review_summary(loaded)]
        row = loaded.rows[pos]
        corrected = label if label is not None and label != row.label else None
        try:
            loaded.review.set(row.image_path, flags=flags or [], note=note or "", label=corrected,
                              original_label=row.label, index=row.index)
        except ReviewError as exc:
            gr.Warning(str(exc))
            return [*view_outputs(loaded, order, pos, zoom, normalized, flt), review_summary(loaded)]
        out = view_outputs(loaded, order, pos, zoom, normalized, flt)
        out[-1] = f"✔ saved to {loaded.review.path}"
        return [*out, review_summary(loaded)]

    def export(loaded):
        if loaded is None or loaded.data_file is None:
            return ("✗ the result names no dataset inside the served folders: the corrected copy needs the dataset "
                    "file (pass its folder with --data-root)")
        try:
            out = export_reviewed(loaded.data_file)
        except (ReviewError, OSError, ValueError) as exc:
            return f"✗ {exc}"
        return f"✔ wrote `{out}` (corrected labels; flags as row fields, e.g. \"gt_wrong\": true)"

    worst_headers = ["#", "element", "CER", "F1", "NED", "ground truth"]

    def worst(loaded, k, metric):
        if loaded is None:
            return []
        return rows_table(worst_k(loaded.rows, int(k or 10), metric or "cer"))

    def slices(loaded, by):
        if loaded is None:
            return [], ""
        by = by or "element"
        info: dict = {}
        out = []
        for s in slice_table(loaded.scored, by=by, info=info):
            ci = s.get("CER 95% CI")
            out.append([s[by], s["n"], s["errors"],
                        "—" if s.get("CER (micro)") is None else f"{s['CER (micro)']:.4f}",
                        "—" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]",
                        "—" if s.get("F1") is None else f"{s['F1']:.4f}"])
        note = f"{info.get('n_groups', 0)} `{by}` slices, worst (highest micro CER) first"
        if info.get("shown", 0) < info.get("n_groups", 0):
            note = f"showing the {info['shown']} worst of {info['n_groups']} `{by}` slices (highest micro CER first)"
        return out, note

    def rescan(current, signature):
        new = result_choices(args.eval_dir)
        sig = "\n".join(label for label, _ in new)
        if sig == signature:
            return gr.skip(), signature
        values = [n for _, n in new]
        return gr.update(choices=new, value=current if current in values else (values[0] if values else None)), sig

    # ------------------------------------------------------------------------------------------ layout
    with gr.Blocks(title="OCR evaluation viewer", analytics_enabled=False) as demo:
        gr.Markdown("# OCR evaluation viewer")
        loaded_st = gr.State(None)
        order_st = gr.State([])
        pos_st = gr.State(None)
        flt_st = gr.State({})
        target_st = gr.State(None)
        sig_st = gr.State("\n".join(label for label, _ in choices))
        with gr.Row():
            file_dd = gr.Dropdown(choices=choices, value=first, label=f"Result file (in {args.eval_dir}; newest "
                                  f"first)", scale=5, elem_id="file-select")
            refresh_btn = gr.Button("↻ Refresh list", scale=1, elem_id="btn-refresh")
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
            review_dd = gr.Dropdown(label="review", choices=list(REVIEW_FILTERS), value="all", elem_id="flt-review",
                                    scale=2, min_width=140)
            min_len = gr.Number(label="min GT length", precision=0, value=None, minimum=0, scale=1, min_width=90,
                                elem_id="flt-min-len")
            max_len = gr.Number(label="max (0 = any)", precision=0, value=None, minimum=0, scale=1, min_width=90,
                                elem_id="flt-max-len")
            search_tb = gr.Textbox(label="search text / path (Enter)", elem_id="flt-search", scale=2, min_width=150)
            sort_dd = gr.Dropdown(label="sort by", choices=["position", "cer", "f1", "ned", "length"],
                                  value="position", elem_id="sort-key", scale=1, min_width=130)
            desc_cb = gr.Checkbox(label="descending", value=False, elem_id="sort-desc", scale=1, min_width=100)
        with gr.Row():
            with gr.Column(scale=3, min_width=440):
                count_md = gr.Markdown(elem_id="match-count")
                table = gr.Dataframe(headers=ROWS_TABLE_HEADERS, value=[], interactive=False, type="array",
                                     elem_id="sample-table", max_height=620, wrap=True,
                                     column_widths=["8%", "15%", "12%", "12%", "12%", "41%"])
                with gr.Accordion("Top character confusions (click one: its samples)", open=True):
                    with gr.Row():
                        confusion_tb = gr.Textbox(label="confusion filter (e.g. 臺→台; empty = off)", scale=3,
                                                  elem_id="flt-confusion")
                        clear_conf_btn = gr.Button("clear", scale=1, elem_id="btn-clear-confusion")
                    confusion_df = gr.Dataframe(headers=["ground truth → prediction", "count", "samples"], value=[],
                                                interactive=False, type="array", elem_id="confusion-table",
                                                max_height=300)
            with gr.Column(scale=5):
                with gr.Row():
                    prev_btn = gr.Button("⬅ Previous", elem_id="btn-prev", scale=1)
                    pos_md = gr.Markdown(elem_id="position")
                    next_btn = gr.Button("Next ➡", elem_id="btn-next", variant="primary", scale=1)
                    jump_nb = gr.Number(label="sample # (type one, Enter)", precision=0, minimum=0, scale=1,
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
                                                    value=False, elem_id="diff-normalized")
                        legend_html = gr.HTML()
                        diff_out = gr.HTML(elem_id="sample-diff")
                with gr.Row():
                    gt_tb = gr.Textbox(label="Ground truth", lines=6, max_lines=20, interactive=False,
                                       elem_id="gt-text")
                    pred_tb = gr.Textbox(label="Prediction", lines=6, max_lines=20, interactive=False,
                                         elem_id="pred-text")
                tables_html = gr.HTML(visible=False, elem_id="sample-tables")
                with gr.Accordion("Review this sample (saved next to the dataset, never into it)", open=True):
                    with gr.Row():
                        rv_flags = gr.CheckboxGroup(flag_choices, label="flag", elem_id="review-flags", scale=2)
                        rv_note = gr.Textbox(label="note", lines=2, elem_id="review-note", scale=3)
                    rv_label = gr.Textbox(label="corrected ground truth (edit the text; unchanged = no correction)",
                                          lines=3, max_lines=20, interactive=True, elem_id="review-label")
                    with gr.Row():
                        rv_save = gr.Button("Save review", variant="primary", elem_id="btn-review-save")
                        rv_status = gr.Markdown(elem_id="review-status")
                    review_md = gr.Markdown(elem_id="review-summary")
                    with gr.Row():
                        export_btn = gr.Button("Export a corrected copy of the dataset", elem_id="btn-export")
                        export_md = gr.Markdown(elem_id="export-status")
                link_tb = gr.Textbox(label="link to this view (also in the address bar)", interactive=False,
                                     elem_id="deep-link")
        with gr.Accordion("Worst samples", open=True):
            with gr.Row():
                k_nb = gr.Number(label="k", value=10, precision=0, minimum=1)
                worst_metric = gr.Dropdown(label="by", choices=["cer", "ned", "f1"], value="cer")
            worst_df = gr.Dataframe(headers=worst_headers, value=[], interactive=False, type="array",
                                    elem_id="worst-table")
        with gr.Accordion("Slices (n, micro CER with 95 % bootstrap CI, mean F1; worst first)", open=True):
            slice_by = gr.Dropdown(label="slice by", choices=list(SLICE_BY), value="element")
            slice_note = gr.Markdown(elem_id="slice-note")
            slice_df = gr.Dataframe(headers=["slice", "n", "errors", "CER", "CER 95% CI", "F1"], value=[],
                                    interactive=False, type="array", elem_id="slice-table")

        # ------------------------------------------------------------------------------------------ events
        # Widgets react to a person's input (.input / .submit / .select), not to .change: the page also sets them
        # from a link, and that must not re-run the filters (it would lose the linked sample).
        file_out = [loaded_st, header_md, scores_md, config_js, element_dd, layout_dd, errors_dd, review_dd,
                    confusion_tb, search_tb, sort_dd, desc_cb, target_st, review_md, confusion_df]
        filters = [loaded_st, element_dd, layout_dd, errors_dd, review_dd, confusion_tb, min_len, max_len, search_tb,
                   sort_dd, desc_cb, zoom_sl, normalized_cb, target_st]
        view = [pos_st, pos_md, image_html, info_md, legend_html, diff_out, gt_tb, pred_tb, tables_html, jump_nb,
                link_tb, rv_flags, rv_note, rv_label, rv_status]
        apply_out = [order_st, count_md, table, flt_st, target_st, *view]
        nav_in = [loaded_st, order_st, pos_st, zoom_sl, normalized_cb, flt_st]

        def after_file(ev):
            ev.then(apply, filters, apply_out).then(worst, [loaded_st, k_nb, worst_metric], [worst_df]).then(
                slices, [loaded_st, slice_by], [slice_df, slice_note])

        after_file(demo.load(init, None, [file_dd, *file_out]))
        after_file(file_dd.input(load_file, [file_dd], file_out, api_name="load"))
        after_file(refresh_btn.click(rescan, [file_dd, sig_st], [file_dd, sig_st]).then(  # re-read the file too
            load_file, [file_dd], file_out))
        if args.rescan_seconds and args.rescan_seconds > 0:
            gr.Timer(args.rescan_seconds).tick(rescan, [file_dd, sig_st], [file_dd, sig_st])
        for comp in (element_dd, layout_dd, errors_dd, review_dd, sort_dd, desc_cb):
            comp.input(apply, filters, apply_out)
        for comp in (min_len, max_len, search_tb, confusion_tb):
            comp.submit(apply, filters, apply_out)
        confusion_df.select(pick_confusion, [loaded_st], [confusion_tb]).then(apply, filters, apply_out)
        clear_conf_btn.click(lambda: "", None, [confusion_tb]).then(apply, filters, apply_out)
        prev_btn.click(move(-1), nav_in, view)
        next_btn.click(move(+1), nav_in, view)
        jump_in = [loaded_st, order_st, pos_st, jump_nb, zoom_sl, normalized_cb, flt_st]
        jump_btn.click(jump, jump_in, view)
        jump_nb.submit(jump, jump_in, view)
        table.select(pick, nav_in, view)
        worst_df.select(pick, nav_in, view)
        zoom_sl.change(redraw, nav_in, view)  # never set by the page itself: .change is safe here
        normalized_cb.change(redraw, nav_in, view)
        rv_save.click(save_review, [loaded_st, order_st, pos_st, rv_flags, rv_note, rv_label, zoom_sl, normalized_cb,
                                    flt_st], [*view, review_md])
        export_btn.click(export, [loaded_st], [export_md])
        k_nb.submit(worst, [loaded_st, k_nb, worst_metric], [worst_df])
        worst_metric.input(worst, [loaded_st, k_nb, worst_metric], [worst_df])
        slice_by.input(slices, [loaded_st, slice_by], [slice_df, slice_note])
        link_tb.change(None, [link_tb], None, js=URL_JS)
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
