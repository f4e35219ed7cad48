"""Multi-process training through an existing engine: `accelerate launch` with the shipped configs.

CPU, 2 processes, gloo: `core/sft_gemma.py` trains the embedded tiny Gemma 3 with the DDP config, each rank on its
own shard of the data, and after the last step the two ranks' trainable weights are identical (and changed), i.e.
gradients really were all-reduced. The FSDP and DeepSpeed configs are checked for what CPU CI can check: they parse
into accelerate's config classes with the intended settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
EXAMPLE = ROOT / "data" / "example.json"


def _launch(config: Path, tmp_path: Path, extra: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update({"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
                "GEMMA_OCR_CACHE": env.get("GEMMA_OCR_CACHE", str(tmp_path / "cache"))})
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "2",
           "--mixed_precision", "no", "--main_process_port", "0",
           str(ROOT / "tests" / "helpers" / "ddp_train_dump.py"), str(tmp_path / "dump"),
           "--model_name", "embedded/tiny-gemma3", "--input_data", str(EXAMPLE), "--val_ratio", "0.4",
           "--eval_max_new_tokens", "6",
           "--output_dir", str(tmp_path / "out"), "--max_steps", "3", "--per_device_train_batch_size", "2",
           "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2", "--save_steps", "1000",
           "--eval_steps", "1000", "--logging_steps", "1", "--dataloader_num_workers", "0", "--load_in_4bit", "false",
           "--num_train_epochs", "1", *extra]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_ddp_two_cpu_processes_keep_identical_weights(tmp_path):
    import torch

    if not EXAMPLE.is_file():
        pytest.skip("data/example.json missing")
    # group_by_length: each rank streams its share of the epochs (ContinuousEpochs); 3 steps cross an epoch boundary
    proc = _launch(CONFIGS / "ddp.yaml", tmp_path, ["--group_by_length", "true"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    r0 = torch.load(tmp_path / "dump" / "rank0.pt")
    r1 = torch.load(tmp_path / "dump" / "rank1.pt")
    assert r0["world_size"] == r1["world_size"] == 2, "did not run as 2 processes"
    assert r0["steps"] == r1["steps"] == 3
    assert r0["loader"] == r1["loader"] == "ContinuousEpochs"
    assert r0["after"].keys() == r1["after"].keys() and r0["after"], "no trainable weights dumped"
    changed = [n for n in r0["after"] if not torch.equal(r0["after"][n], r0["before"][n])]
    assert len(changed) >= len(r0["after"]) // 2, "training did not update the adapters"
    for n in r0["after"]:
        assert torch.equal(r0["before"][n], r1["before"][n]), f"ranks started from different weights: {n}"
        assert torch.allclose(r0["after"][n], r1["after"][n], rtol=0, atol=1e-6), f"ranks diverged: {n}"
    # the adapter was saved once, by the main process (two ranks writing the same files raced: a CI failure)
    assert (tmp_path / "out" / "lora" / "adapter_config.json").is_file()
    assert proc.stdout.count("saved adapter + processor + metadata") == 1, proc.stdout[-2000:]
    # the final generation CER: each rank decoded its share of the validation samples, both report the same CER
    import json
    import re

    meta = json.loads((tmp_path / "out" / "lora" / "metadata.json").read_text(encoding="utf-8"))
    n_val = meta["data"]["n_val"]
    lines = re.findall(r"generation CER \(micro, standard, greedy, n=(\d+), (\d+) decoded on this rank\) ([0-9.]+)",
                       proc.stdout)
    assert len(lines) == 2, proc.stdout[-3000:]
    assert {int(n) for n, _, _ in lines} == {n_val} == {meta["final_val_cer_n"]} and n_val >= 2
    assert sorted(int(k) for _, k, _ in lines) == [n_val // 2, n_val - n_val // 2]
    assert lines[0][2] == lines[1][2] and abs(float(lines[0][2]) - meta["final_val_cer"]) < 1e-4


def test_generation_cer_shards_across_two_cpu_ranks(tmp_path):
    """GenerationCER under a 2-process data-parallel run: each rank decodes every other sample, the edit counts are
    summed over ranks (gloo), and both ranks return the CER and the predictions (in sample order) that one process
    decoding all of them gets. Generation is a deterministic stand-in (tests/helpers/sharded_cer.py)."""
    import importlib.util
    import json
    import socket

    spec = importlib.util.spec_from_file_location("_sharded_cer", ROOT / "tests" / "helpers" / "sharded_cer.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)  # defines the stand-in only; its run is under __main__
    fake_prediction = helper.fake_prediction

    from lib.train.callbacks import micro_cer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "sharded_cer.py")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-4000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    texts = ["甲乙丙丁戊己庚"[: 2 + i % 5] for i in range(7)]
    preds = [fake_prediction(f"/nowhere/img_{i}.png") for i in range(7)]
    expected = micro_cer(preds, texts)
    assert 0 < expected < 1
    # each rank alone would score differently: the agreement below needs the cross-rank sum
    assert micro_cer(preds[0::2], texts[0::2]) != expected != micro_cer(preds[1::2], texts[1::2])
    for r in results:
        assert r["world"] == 2 and "MULTI_CPU" in r["type"]
        assert abs(r["result"]["cer"] - expected) < 1e-12 and r["result"]["cer_n"] == 7
        assert r["predictions"] == preds
    assert sorted(r["result"]["cer_n_local"] for r in results) == [3, 4]


def test_fsdp_and_deepspeed_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    ddp = load_config_from_file(str(CONFIGS / "ddp.yaml"))
    assert ddp.distributed_type == "MULTI_GPU" and ddp.mixed_precision == "bf16"
    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml"))
    assert fsdp.distributed_type == "FSDP"
    assert fsdp.fsdp_config["fsdp_version"] == 2
    assert "Gemma3DecoderLayer" in fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
    for stage in (2, 3):
        ds = load_config_from_file(str(CONFIGS / f"deepspeed_zero{stage}.yaml"))
        assert ds.distributed_type == "DEEPSPEED" and ds.deepspeed_config["zero_stage"] == stage
