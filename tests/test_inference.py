"""core/inference.py: a folder of images and PDFs (rasterised at the stated DPI), any backend, text + JSON per page."""

import importlib
import json
from pathlib import Path

import pytest

from lib.evaluation.stub_server import StubServer, image_key

ROOT = Path(__file__).resolve().parents[1]
REAL_LINE = ROOT / ".." / "shared" / "data" / "real" / "rapidocr_lines" / "images" / "text_rec.jpg"


inf = importlib.import_module("core.inference")


def run(*argv):
    return inf.main(inf.parse_args(inf.InferenceArgs, [*argv, "--no-progress"]))


def make_inputs(folder: Path):
    from PIL import Image, ImageDraw

    folder.mkdir()
    for i, name in enumerate(["a.png", "b.jpg"]):
        im = Image.new("RGB", (60 + i, 30), "white")
        ImageDraw.Draw(im).rectangle([5, 5, 20 + i * 9, 20], fill="black")
        im.save(folder / name)
    pages = [Image.new("RGB", (100, 50), c) for c in ("white", "gray")]
    pages[0].save(folder / "doc.pdf", save_all=True, append_images=pages[1:], resolution=72)
    (folder / "notes.txt").write_text("ignored")


def test_folder_of_images_and_pdf_pages(tmp_path):
    make_inputs(tmp_path / "in")
    seen = {}

    def responder(body, image):
        from PIL import Image
        import io

        im = Image.open(io.BytesIO(image))
        seen[image_key(image)] = im.size
        return f"```\n頁面 {im.size[0]}x{im.size[1]}\n```"

    with StubServer(responder) as srv:
        out = run("--image-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--mode", "vllm",
                  "--vllm-url", srv.base_url, "--dpi", "144", "--output-file", str(tmp_path / "all.json"))
        n_requests = srv.stats["requests"]
    assert out["n_pages"] == 4 and out["n_errors"] == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".txt")
    assert names == ["a.txt", "b.txt", "doc_p0001.txt", "doc_p0002.txt"]
    # 100x50 pt pages at 144 dpi -> 200x100 px; the code fence is stripped by the default post-processors
    assert (tmp_path / "out" / "doc_p0002.txt").read_text(encoding="utf-8") == "頁面 200x100\n"
    page = json.loads((tmp_path / "out" / "doc_p0001.json").read_text(encoding="utf-8"))
    assert page["page"] == 1 and page["source"].endswith("doc.pdf") and page["raw_prediction"].startswith("```")
    combined = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert [r["image_name"] for r in combined["results"]][:2] == ["a.png", "b.jpg"]
    assert combined["results"][0]["ocr_result"] == "頁面 60x30"
    # the same command again: everything comes from the journal, no request is repeated
    with StubServer(responder) as srv:
        run("--image-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--mode", "vllm",
            "--vllm-url", srv.base_url, "--dpi", "144", "--output-file", str(tmp_path / "all.json"))
        assert srv.stats["requests"] == 0 and n_requests == 4


def test_broken_pdf_is_reported_and_the_rest_runs(tmp_path):
    make_inputs(tmp_path / "in")
    (tmp_path / "in" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with StubServer() as srv:
        out = run("--input", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--mode", "vllm",
                  "--vllm-url", srv.base_url, "--output-file", str(tmp_path / "all.json"))
    errs = [r for r in out["results"] if r["error"]]
    assert len(errs) == 1 and "cannot rasterise PDF" in errs[0]["error"] and out["n_pages"] == 5


@pytest.mark.skipif(not REAL_LINE.is_file(), reason="../shared/data/real not present")
def test_pdf_with_paddleocr_offline(tmp_path):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.open(REAL_LINE).convert("RGB").save(tmp_path / "in" / "scan.pdf", resolution=72)
    out = run("--input", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--mode", "paddleocr",
              "--paddle-mode", "line", "--dpi", "72", "--output-file", "")
    assert out["results"][0]["ocr_result"] == "韩国小馆"
    assert (tmp_path / "out" / "scan_p0001.txt").read_text(encoding="utf-8").strip() == "韩国小馆"
