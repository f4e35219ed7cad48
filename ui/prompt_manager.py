"""List, view, add, update and delete the OCR prompt YAML files that training and evaluation read.

    python ui/prompt_manager.py --config-dir configs/ocr_prompt --port 7860

A prompt file is lib/prompt.py's format (`prompt_text`, `image_position`, `system_prompt`, optional
`description`); every file is validated with `yaml.safe_load` + `lib.prompt.parse_prompt`, the same parser
`core/evaluate.py --prompt-config` and training use. Names are sanitised and resolved inside --config-dir (no
`../`, no absolute paths, no symlinks out of the folder); an existing file is only replaced or deleted after
ticking the confirmation box. Listens on 127.0.0.1 unless --server_name says otherwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class PromptManagerArgs:
    """OCR prompt manager (Gradio)."""

    config_dir: str = field("configs/ocr_prompt", help="folder of prompt YAML files (created if missing)")
    initial_file: str | None = field(None, help="prompt file to open first in the editor (name in --config-dir)")
    server_name: str = field("127.0.0.1", help="interface to listen on (0.0.0.0 exposes the app to your network)")
    server_port: int = field(7860, aliases=["port"], help="port (0 = any free port)")
    share: bool = field(False, help="create a public Gradio share link (sends traffic through gradio.live)")


def build_app(args: PromptManagerArgs):
    from lib.ui.app import import_gradio
    from lib.ui.prompts import PromptStore, PromptStoreError, render_prompt_yaml, validate_prompt_yaml

    gr = import_gradio()
    store = PromptStore(args.config_dir)
    headers = ["file", "prompt_text", "image_position", "system_prompt", "status"]

    def table():
        return [[e.name, e.prompt_text or "", e.image_position or "", e.system_prompt or "",
                 "✔ valid" if e.error is None else f"✗ {e.error}"] for e in store.entries()]

    def choices(value=None):
        names = store.names()
        return gr.update(choices=names, value=value if value in names else None)

    def ok(msg):
        return f"✔ {msg}"

    def open_file(name):
        if not name:
            return "", ""
        try:
            text = store.read_text(name)
        except PromptStoreError as exc:
            return "", f"✗ {exc}"
        try:
            validate_prompt_yaml(text, name)
            status = ok(f"{name} is a valid prompt file")
        except PromptStoreError as exc:
            status = f"✗ {exc}"
        return text, status

    def validate(text):
        try:
            p = validate_prompt_yaml(text or "")
            return ok(f"valid: prompt_text={p.prompt_text!r}, image_position={p.image_position}")
        except PromptStoreError as exc:
            return f"✗ {exc}"

    def save(name, text, confirm):
        try:
            written = store.update(name or "", text or "", confirm_overwrite=bool(confirm))
            return ok(f"saved {written}"), table(), False
        except PromptStoreError as exc:
            return f"✗ {exc}", table(), confirm

    def delete(name, confirm):
        try:
            gone = store.delete(name or "", confirm=bool(confirm))
            return ok(f"deleted {gone}"), table(), choices(), "", False
        except PromptStoreError as exc:
            return f"✗ {exc}", table(), choices(name), gr.update(), confirm

    def preview(prompt_text, position, system, description):
        if not (prompt_text or "").strip():
            return ""
        return render_prompt_yaml(prompt_text, position, system or None, description or None)

    def add(name, prompt_text, position, system, description):
        try:
            yaml_text = render_prompt_yaml(prompt_text or "", position, system or None, description or None)
            written = store.add(name or "", yaml_text)
            return (ok(f"created {written}"), table(), choices(written), *open_file(written))
        except PromptStoreError as exc:
            return f"✗ {exc}", table(), gr.update(), gr.update(), gr.update()

    names = store.names()
    first = args.initial_file if args.initial_file in names else (names[0] if names else None)
    with gr.Blocks(title="OCR prompt manager", analytics_enabled=False) as demo:
        gr.Markdown("# OCR prompt manager")
        gr.Markdown(f"Folder: `{store.root}` — training and `core/evaluate.py --prompt-config <file>` read these "
                    f"files with the same parser (lib/prompt.py).")
        with gr.Tab("All prompts", id="tab-list"):
            refresh_btn = gr.Button("↻ Refresh")
            prompt_df = gr.Dataframe(headers=headers, value=table(), interactive=False, type="array", wrap=True,
                                     column_widths=["14%", "30%", "12%", "14%", "30%"], elem_id="prompt-table")
        with gr.Tab("View / edit / delete", id="tab-edit"):
            with gr.Row():
                edit_dd = gr.Dropdown(choices=names, value=first, label="prompt file", elem_id="edit-select",
                                      scale=3)
                reload_btn = gr.Button("Reload from disk", scale=1)
            editor = gr.Code(language="yaml", lines=8, label="YAML", interactive=True, elem_id="edit-yaml")
            with gr.Row():
                validate_btn = gr.Button("✔ Validate", elem_id="btn-validate")
                confirm_cb = gr.Checkbox(label="confirm overwrite of the existing file", value=False,
                                         elem_id="confirm-overwrite")
                save_btn = gr.Button("Save", variant="primary", elem_id="btn-save")
            with gr.Row():
                confirm_del = gr.Checkbox(label="confirm delete", value=False, elem_id="confirm-delete")
                delete_btn = gr.Button("Delete", variant="stop", elem_id="btn-delete")
            edit_status = gr.Markdown(elem_id="edit-status")
        with gr.Tab("Add", id="tab-add"):
            new_name = gr.Textbox(label="file name (letters, digits, _ - . ; .yml is added)", elem_id="new-name")
            new_text = gr.Textbox(label="prompt_text", lines=3, elem_id="new-text")
            with gr.Row():
                new_pos = gr.Radio(["image_first", "text_first"], value="image_first", label="image_position")
                new_system = gr.Textbox(label="system_prompt (optional)")
                new_desc = gr.Textbox(label="description (optional)")
            new_preview = gr.Code(language="yaml", label="file preview", interactive=False)
            add_btn = gr.Button("+ Add", variant="primary", elem_id="btn-add")
            add_status = gr.Markdown(elem_id="add-status")

        demo.load(open_file, [edit_dd], [editor, edit_status])
        refresh_btn.click(lambda: (table(), choices()), None, [prompt_df, edit_dd]).then(
            open_file, [edit_dd], [editor, edit_status])
        # .input (a person's choice), not .change: the dropdown also changes when a delete or an add updates it,
        # and opening a file then would overwrite their "deleted ..." / "created ..." message
        edit_dd.input(open_file, [edit_dd], [editor, edit_status])
        reload_btn.click(open_file, [edit_dd], [editor, edit_status])
        validate_btn.click(validate, [editor], [edit_status])
        save_btn.click(save, [edit_dd, editor, confirm_cb], [edit_status, prompt_df, confirm_cb])
        delete_btn.click(delete, [edit_dd, confirm_del], [edit_status, prompt_df, edit_dd, editor, confirm_del])
        for comp in (new_text, new_pos, new_system, new_desc):
            comp.change(preview, [new_text, new_pos, new_system, new_desc], [new_preview])
        add_btn.click(add, [new_name, new_text, new_pos, new_system, new_desc],
                      [add_status, prompt_df, edit_dd, editor, edit_status])
    return demo


def serve(args: PromptManagerArgs, block: bool = True):
    from lib.ui.app import launch

    demo = build_app(args)
    # The prompt manager serves no files: allowed_paths stays empty.
    url = launch(demo, server_name=args.server_name, server_port=args.server_port, share=args.share,
                 allowed_paths=[], block=block)
    return demo, url


def main(args: PromptManagerArgs) -> dict:
    _, url = serve(args, block=True)
    return {"url": url, "config_dir": str(Path(args.config_dir).resolve())}


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("prompt_manager.py"):  # a port in use, a bad flag value: one line, exit 2
        main(parse_args(PromptManagerArgs))
