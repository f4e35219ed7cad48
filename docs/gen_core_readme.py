"""Regenerate core/README.md: each script's docstring + its --help.  Run: python docs/gen_core_readme.py"""
import ast, subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
groups = [("Pipeline", ["validate_data.py", "split_dataset.py", "sft_gemma.py", "gemma_adapter_merge.py", "evaluate.py",
                        "count_score.py", "inference.py", "results_table.py", "quickstart.py", "quickstart_tiny.py"]),
          ("Search", ["gemma_hyperparameter_search.py"]),
          ("Reader", ["pretrain_reader.py"]),
          ("Data", ["synth_data.py", "add_layout.py", "data_analysis/analyze_train_test_data.py", "data_analysis/eval_result_analysis.py"]),
          ("Benchmarks", sorted(str(p.relative_to(ROOT / "core")) for p in (ROOT / "core/benchmarks").glob("bench_*.py")))]
out = ["# core/ — every script and its flags", "",
       "Run from the repository root (`python core/<script>.py ...`; benchmarks as modules: `python -m",
       "core.benchmarks.<name> ...`). Every script takes `--config file.json|yaml`",
       "(precedence: defaults < config file < command line), accepts each flag with `-` or `_`, prints its resolved",
       "config and saves it next to its output. The flag lists below are each script's own `--help` output",
       "(`tests/test_core_readme.py` checks that every flag is documented here).", ""]
body = []
for title, scripts in groups:
    body.append(f"## {title}\n")
    for s in scripts:
        p = ROOT / "core" / s
        if not p.exists():
            continue
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        helptext = subprocess.run([sys.executable, str(p), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
        body.append(f"### `core/{s}`\n")
        body.append(doc.strip() + "\n")
        body.append("<details><summary>flags (<code>--help</code>)</summary>\n\n```text\n" + helptext.rstrip() + "\n```\n</details>\n")
out += body
(ROOT / "core" / "README.md").write_text("\n".join(out) + "\n")
print("wrote", len(out), "blocks")
