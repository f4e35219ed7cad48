"""One rank of a 2-process CPU run of `GenerationCER` under accelerate (tests/test_multigpu.py).

Generation itself is replaced by a deterministic function of the image path (the test is about how the subset is
split across ranks and the counts combined, not about the model). Prints one JSON line: this rank's result and the
order of the gathered predictions."""

import json
from pathlib import Path



def fake_prediction(path: str) -> str:
    i = int(Path(path).stem.split("_")[1])
    return "甲乙丙丁戊己"[: i % 5] + "x" * (i % 3)


class _Out:
    def __init__(self, text):
        self.text = text


def main() -> None:
    from accelerate import Accelerator

    import lib.train.callbacks
    from lib.data import Sample
    from lib.train.callbacks import GenerationCER

    lib.train.callbacks.generate_batch = lambda model, processor, prompt, paths, **kw: [_Out(fake_prediction(p))
                                                                                      for p in paths]

    acc = Accelerator(cpu=True)
    samples = [Sample(image_path=f"/nowhere/img_{i}.png", text="甲乙丙丁戊己庚"[: 2 + i % 5], index=i, doc_id=f"d{i}")
               for i in range(7)]
    gen = GenerationCER(processor=None, prompt=None, samples=samples, n_samples=0)
    res = gen(model=None, accelerator=acc)
    print(json.dumps({"rank": acc.process_index, "world": acc.num_processes, "type": str(acc.distributed_type),
                      "result": res, "predictions": gen.last_predictions}, ensure_ascii=False), flush=True)
    # leave together and close gloo before exit: a rank exiting with the group open while the other still talks to
    # it aborted once in CI ("terminate called without an active exception", exit -6) after printing its result
    import torch.distributed as dist

    acc.wait_for_everyone()
    dist.destroy_process_group()


if __name__ == "__main__":  # importing this module (the test does, for fake_prediction) must change nothing
    main()
