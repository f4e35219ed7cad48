"""Run `core/sft_gemma.py` unchanged (under `accelerate launch`) and save this rank's trainable weights at the end.

Used by tests/test_multigpu.py: `accelerate launch ... tests/helpers/ddp_train_dump.py <dump_dir> <sft_gemma.py args>`.
The only addition to the real run is a callback (added through `lib.train.run.build_trainer`, which
`run_training` calls) that writes `<dump_dir>/rank<r>.pt` = {"before", "after", "world_size", "steps", "loader"}.
"""

import runpy
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

import lib.train.run as run

ROOT = Path(__file__).resolve().parents[2]  # the test puts it on PYTHONPATH
dump_dir = Path(sys.argv[1])
_orig_build = run.build_trainer


class _Dump(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer
        self.before = None

    def _weights(self):
        return {n: p.detach().float().cpu().clone() for n, p in self.trainer.model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, **kw):
        self.before = self._weights()

    def on_train_end(self, args, state, control, **kw):
        dump_dir.mkdir(parents=True, exist_ok=True)
        loader = getattr(self.trainer.callback_handler, "train_dataloader", None)
        torch.save({"before": self.before, "after": self._weights(), "world_size": args.world_size,
                    "steps": state.global_step, "loader": type(loader).__name__},
                   dump_dir / f"rank{args.process_index}.pt")


def build_trainer(*a, **kw):
    trainer = _orig_build(*a, **kw)
    trainer.add_callback(_Dump(trainer))
    return trainer


run.build_trainer = build_trainer
sys.argv = [str(ROOT / "core" / "sft_gemma.py")] + sys.argv[2:]
runpy.run_path(str(ROOT / "core" / "sft_gemma.py"), run_name="__main__")
