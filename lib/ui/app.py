"""Launching the Gradio apps the same way: telemetry off, local-only by default, files served only from the
folders an app was given (`allowed_paths`), keyboard shortcuts, one stylesheet.

Gradio facts this relies on (gradio 6.x source): `GRADIO_ANALYTICS_ENABLED=False` / `Blocks(analytics_enabled=False)`
turns off the usage ping and the version check thread; `launch(allowed_paths=...)` is what the `/gradio_api/file=`
route serves from (besides Gradio's own cache); `enable_monitoring=False` removes /monitoring; `run_history=False`
records nothing in the browser; the default theme's fonts are bundled (no Google Fonts request).

Not for: any app's layout (each ui/*.py builds its own Blocks).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from lib.errors import UserError
from lib.ui.diff import DIFF_CSS
from lib.ui.tables import TABLE_CSS

__all__ = ["import_gradio", "launch", "serve_app", "free_port", "file_url", "APP_CSS", "KEYBOARD_JS", "image_html"]

# One plain CJK sans-serif for every widget (text boxes, tables, diffs): without it, text areas fall back to whatever
# fontconfig picks for Han characters (a calligraphic face such as AR PL UKai on Debian) while the diff is in Noto.
CJK_FONT = ('"Noto Sans CJK TC", "Noto Sans TC", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans TW", '
            '"Microsoft JhengHei", "PingFang TC", sans-serif')

APP_CSS = f"""
:root, .gradio-container {{ --ocr-cjk-font: {CJK_FONT}; --font: var(--ocr-cjk-font);
  --font-mono: "IBM Plex Mono", "Noto Sans Mono CJK TC", {CJK_FONT}; }}
.gradio-container, .gradio-container textarea, .gradio-container input, .gradio-container table,
.gradio-container [role=gridcell], .gradio-container [role=gridcell] *, .gradio-container [role=columnheader] *,
.gradio-container .prose {{ font-family: var(--ocr-cjk-font) !important; }}
""" + DIFF_CSS + TABLE_CSS + """
.ocr-img-wrap { overflow: auto; max-height: 760px; border: 1px solid var(--border-color-primary); border-radius: 6px;
  background: repeating-conic-gradient(#f4f4f4 0% 25%, #fff 0% 50%) 50% / 16px 16px; }
.ocr-img-wrap img { display: block; max-width: none; }
.ocr-img-missing { padding: 24px; color: #a00; }
.ocr-verdict { font-size: 1.1rem; }
#sample-table { max-height: 430px; overflow: auto; }
#deep-link textarea, #deep-link input { font-size: 0.8rem; }
"""

# Arrow keys / j k move between samples unless the focus is in a text field.
KEYBOARD_JS = """
<script>
document.addEventListener('keydown', function (e) {
  var t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  var id = null;
  if (e.key === 'ArrowRight' || e.key === 'j') id = 'btn-next';
  else if (e.key === 'ArrowLeft' || e.key === 'k') id = 'btn-prev';
  if (!id) return;
  var el = document.getElementById(id);
  if (!el) return;
  var b = el.tagName === 'BUTTON' ? el : el.querySelector('button');
  if (b) { e.preventDefault(); b.click(); }
});
</script>
"""


class PortInUse(UserError, OSError):
    """The port an app was asked to listen on is taken."""


def import_gradio():
    """Import gradio with telemetry disabled (the variable must be set before Blocks are created)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_RUN_HISTORY", "False")
    import gradio as gr

    return gr


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def file_url(path: str | os.PathLike) -> str:
    """The URL (relative to the app page) under which Gradio serves an allowed file."""
    return "gradio_api/file=" + quote(str(Path(path)), safe="/")


def image_html(path: str | os.PathLike | None, reason: str = "", zoom: int = 100, alt: str = "sample image") -> str:
    """The sample image in a scrollable box; `zoom` is a percentage of the box width (100 = fit the width).
    Click opens the full-resolution file in a new tab."""
    import html

    if path is None:
        return f'<div class="ocr-img-wrap ocr-img-missing">{html.escape(reason or "no image")}</div>'
    url = html.escape(file_url(path), quote=True)
    zoom = max(10, min(int(zoom or 100), 800))
    return (f'<div class="ocr-img-wrap"><a href="{url}" target="_blank" rel="noopener" title="open full size">'
            f'<img src="{url}" alt="{html.escape(alt, quote=True)}" style="width:{zoom}%"></a></div>')


def launch(demo: Any, *, server_name: str = "127.0.0.1", server_port: int | None = None, share: bool = False,
           allowed_paths: Sequence[str | os.PathLike] = (), block: bool = True, quiet: bool = False,
           head: str = KEYBOARD_JS, css: str = APP_CSS) -> str:
    """Start the app; returns its local URL. `server_port=0` picks a free port. With `block=False` the server runs
    in a background thread (tests call `demo.close()`)."""
    if server_port == 0:
        server_port = free_port(server_name if server_name not in ("0.0.0.0", "") else "127.0.0.1")
    served = getattr(demo, "served_files", None)
    if served is not None:  # the app's own list of image files, growing as it opens result files
        allowed = served
    else:
        allowed = sorted({os.path.realpath(os.path.abspath(os.fspath(p))) for p in allowed_paths if p})
    try:
        _, local_url, share_url = demo.launch(
            server_name=server_name, server_port=server_port, share=share, allowed_paths=allowed or None,
            prevent_thread_lock=True, quiet=quiet, show_error=True, enable_monitoring=False, ssr_mode=False,
            footer_links=["api", "settings"], run_history=False, head=head, css=css)
    except OSError as exc:
        if "port" in str(exc).lower():
            raise PortInUse(f"port {server_port} on {server_name} is in use (another app, or an earlier run still "
                            f"going?); pass --server_port with a free port, or --server_port 0 for any free "
                            f"one") from None
        raise
    if served is not None:
        demo.allowed_paths = served  # Gradio reads it per request: files added later are served too
    if not quiet:
        if served is not None:
            print(f"Serving only the images the result files name, inside: {', '.join(served.roots) or '(none)'}",
                  flush=True)
        else:
            print(f"Serving files only from: {', '.join(allowed) or '(none)'}", flush=True)
        if share_url:
            print(f"Public share link: {share_url}", flush=True)
    if block:
        try:
            demo.block_thread()
        finally:
            demo.close()
    return local_url


def serve_app(build_app, args: Any, allowed_paths: Sequence[str | os.PathLike], block: bool = True):
    """The apps' `serve()`: refuse `--data-root` values that are not folders, build the Blocks with
    `build_app(args)`, `launch` it with the app's server flags. Returns (demo, url)."""
    for root in getattr(args, "data_root", ()) or ():
        if not Path(root).is_dir():
            raise SystemExit(f"--data-root {root} is not a folder")
    demo = build_app(args)
    url = launch(demo, server_name=args.server_name, server_port=args.server_port, share=args.share,
                 allowed_paths=allowed_paths, block=block)
    return demo, url
