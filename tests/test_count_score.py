"""core/count_score.py run the way users run it: re-score an original-format file, several profiles, --compare,
atomic output, "did you mean" errors, and a smoke run on the real Chinese OCR data when it is present."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "core" / "count_score.py"
REAL = ROOT / ".." / "shared" / "data" / "real"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=120)


def original_file(path: Path, preds=("中華民國行政院函", "主旨：請查照。", "")) -> Path:
    labels = ["中華民國行政院函", "主旨：請查照。", "說明"]
    data = {"overall_cer": 0.5, "overall_f1": 0.5, "total_samples": 3, "timestamp": "2025-05-01T10:00:00",
            "model_name": "gemma-3-4b-it",
            "samples": [{"image_path": f"img/{i}.png", "label": g, "prediction": p, "cer_score": 0.0, "f1_score": 0.0}
                        for i, (g, p) in enumerate(zip(labels, preds))]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_rescore_original_file_with_several_profiles(tmp_path):
    src = original_file(tmp_path / "a.json")
    out = tmp_path / "out" / "a_norm.json"
    r = run("--input", src, "--output", out, "--profile", "seed", "standard", "lenient", "--n_bootstrap", "200")
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["profiles"] == ["seed", "standard", "lenient"]
    # seed: labels 中華民國行政院函 (8) 主旨請查照 (5) 說明 (2); the empty prediction costs 2 edits → 2/15
    assert data["overall_cer"] == pytest.approx(2 / 15) == data["scores"]["seed"]["cer_micro"]
    assert data["overall_f1"] == pytest.approx((1 + 1 + 0) / 3)
    assert data["scores"]["standard"]["ci95"]["cer_micro"] is not None
    assert data["total_samples"] == 3 and data["model_name"] == "gemma-3-4b-it"
    assert data["rescored"][0]["previous"]["overall_cer"] == 0.5
    assert [s["cer_score"] for s in data["samples"]] == [0.0, 0.0, 1.0]
    # compact table on the terminal: a header and one line per profile
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("profile"))
    assert [line.split()[0] for line in lines[header + 2:header + 5]] == ["seed", "standard", "lenient"]
    assert "1 empty predictions" in r.stdout
    # seed profile (first): 15 ground-truth Hanzi, the 2 of 說明 deleted; no other class present
    assert "per ground-truth character: hanzi 0.133 (2/15)" in r.stdout
    assert not [p for p in out.parent.iterdir() if p.name != "a_norm.json"]  # no temp file left behind


def test_compare(tmp_path):
    a = original_file(tmp_path / "a.json")
    b = original_file(tmp_path / "b.json", preds=("中華民國行政院函", "主旨：請查照。", "說明"))
    out = tmp_path / "cmp.json"
    r = run("--compare", a, b, "--output", out, "--n_permutations", "500")
    assert r.returncode == 0, r.stderr
    cmp = json.loads(out.read_text(encoding="utf-8"))
    assert cmp["n"] == 3 and cmp["improved"] == 1 and cmp["regressed"] == 0
    assert cmp["difference"] == pytest.approx(-2 / 17)  # standard keeps punctuation: 8 + 7 (主旨:請查照。) + 2 chars
    assert "B − A" in r.stdout and "p =" in r.stdout


def test_bad_profile_and_missing_args_fail_with_a_fix(tmp_path):
    src = original_file(tmp_path / "a.json")
    r = run("--input", src, "--output", tmp_path / "x.json", "--profile", "standrad")
    assert r.returncode != 0 and "did you mean 'standard'" in r.stderr
    r = run("--input", src)
    assert r.returncode != 0 and "--output" in r.stderr
    r = run("--compare", src)
    assert r.returncode != 0 and "exactly two" in r.stderr
    r = run("--input", tmp_path / "missing.json", "--output", tmp_path / "y.json")
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = run("--compare", src, src, "--metric", "cre")
    assert r.returncode == 2 and "did you mean 'cer'" in r.stderr


def test_main_returns_the_scored_dict(tmp_path):
    from core.count_score import CountScoreArgs, main

    src = original_file(tmp_path / "a.json")
    res = main(CountScoreArgs(input=str(src), output=str(tmp_path / "o.json"), n_bootstrap=0))
    assert res["profiles"] == ["standard"] and res["overall_cer"] == pytest.approx(2 / 17)


@pytest.mark.skipif(not (REAL / "omnidocbench_zh" / "tables.json").is_file(), reason="shared real data not present")
def test_real_data_tables_and_blocks(tmp_path):
    """Real OmniDocBench tables (HTML with colspan/rowspan) and text blocks scored against themselves and against a
    damaged copy: perfect scores for identity, TEDS < 1 and CER > 0 for the damaged copy, nothing invalid."""
    samples = []
    for name in ("tables.json", "blocks.json"):
        rows = json.loads((REAL / "omnidocbench_zh" / name).read_text(encoding="utf-8"))
        for row in rows[:20]:
            samples.append({"image_path": row["img_path"], "label": row["ocr_results"], "doc_id": row["doc_id"],
                            "element": row["element"], "prediction": row["ocr_results"]})
    ident = tmp_path / "ident.json"
    ident.write_text(json.dumps({"model_name": "gt", "samples": samples}, ensure_ascii=False), encoding="utf-8")
    damaged = [dict(s, prediction=s["label"].replace("<td>", "<td>口", 3)[:-3] if s["element"] == "table"
                    else s["label"][::2]) for s in samples]
    dmg = tmp_path / "damaged.json"
    dmg.write_text(json.dumps({"model_name": "damaged", "samples": damaged}, ensure_ascii=False), encoding="utf-8")
    for src, perfect in ((ident, True), (dmg, False)):
        out = tmp_path / ("s_" + src.name)
        r = run("--input", src, "--output", out, "--n_bootstrap", "100")
        assert r.returncode == 0, r.stderr
        sc = json.loads(out.read_text(encoding="utf-8"))["scores"]["standard"]
        assert sc["tables"]["n"] == 6 and sc["tables"]["n_invalid_gt"] == 0
        assert sc["slices"]["element"]["table"]["n"] == 6 and sc["slices"]["element"]["text"]["n"] == 20
        if perfect:
            assert sc["cer_micro"] == 0.0 and sc["tables"]["teds_macro"] == 1.0
        else:
            assert sc["cer_micro"] > 0.1 and sc["tables"]["teds_macro"] < 1.0
            assert sc["n_docs"] >= 2 and sc["ci95"]["cer_micro"][0] < sc["cer_micro"] < sc["ci95"]["cer_micro"][1]
