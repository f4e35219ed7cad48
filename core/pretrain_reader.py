#!/usr/bin/env python3
"""Pretrain the reader (a Gemma 3 VLM, `embedded/gemma3-reader-init`) on text lines rendered on the GPU.

    python core/pretrain_reader.py --atlas .device_carry/atlas_pretrain.npz --output_dir runs/reader --minutes 7
    python core/pretrain_reader.py --init runs/reader --output_dir runs/reader2 --minutes 7      # next call
    python core/pretrain_reader.py --build_atlas .device_carry/atlas_pretrain.npz                # atlas only (CPU)

The glyph atlas (every character of lib/reader/charset.py in every installed face, lib/reader/glyphs.py) is built
once on a machine with the fonts and travels instead of them. Writes the model (bf16 shards <= 14 MB), its
processor, `reader_config.json` and `pretrain_state.json` (steps, samples, learning curve, validation CER) to
--output_dir, and prints the summary as JSON. Design and results: docs/READER.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from lib.config import field, parse_args


@dataclasses.dataclass
class PretrainReaderArgs:
    """Pretrain the embedded reader VLM on GPU-rendered text lines."""

    init: str = field("embedded/gemma3-reader-init", help="model to start from: the random-init spec, or a folder "
                      "written by an earlier run (its step count and learning curve continue)")
    atlas: str = field(".device_carry/atlas_pretrain.npz", help="glyph atlas (.npz from --build_atlas)")
    output_dir: str = field("runs/reader", help="where the trained model goes")
    build_atlas: str | None = field(None, help="only build the glyph atlas of the pretraining faces into this path")
    atlas_faces: int = field(0, help="with --build_atlas: keep N pretraining faces spread over the families (0 = all; a "
                             "smaller atlas travels to the GPU beside a larger model)")
    build_ppocr_reader: str | None = field(None, help="only build a reader with PP-OCRv6's recogniser as its vision "
                                           "tower from --init's language model into this folder "
                                           "(lib/reader/ppocr_vision.py)")
    vision_lr_scale: float = field(1.0, help="learning-rate factor of the vision tower (a pretrained one: < 1)")
    freeze: list[str] = field(default_factory=list, help="parameters whose name contains one of these stay frozen "
                              "(vision_tower.backbone vision_tower.head: keep PP-OCRv6's recogniser and its CTC "
                              "path, which decides the image slots, as PP-OCRv6 trained them)")
    batch_size: int = field(512, help="lines per step")
    lr: float = field(1e-3, help="peak learning rate (AdamW)")
    warmup_steps: int = field(300, help="linear warm-up at the start of every call (AdamW state does not travel)")
    minutes: float = field(7.0, help="training time budget of this call (the loop stops, evaluates and saves)")
    max_steps: int = field(0, help="stop after this many steps instead (0 = use --minutes)")
    anneal_frac: float = field(0.25, help="share of the budget at the end over which the lr decays linearly")
    max_len: int = field(48, help="characters per training line")
    n_docs: int = field(4000, help="synthetic 公文 documents feeding the training text (seeds 0..n-1)")
    n_val: int = field(512, help="held-out validation lines (test documents, scored at the end)")
    eval_every: int = field(1000, help="greedy CER on 128 validation lines every N steps (0 = only at the end)")
    workers: int = field(6, help="DataLoader processes drawing strings")
    log_every: int = field(50, help="log a line every N steps")
    pool: str | None = field(".device_carry/gongwen_train.txt.gz", help="cache of the training 公文 lines (built "
                             "when missing; lets a machine without OpenCC use the same text)")
    test_pool: str | None = field(".device_carry/gongwen_test.txt.gz", help="cache of the held-out 公文 lines")
    seed: int = field(0, help="seed")
    compile: bool = field(False, help="torch.compile the model")
    device: str = field("cuda", help="cuda | cpu")
    export_parts: str | None = field(None, help="also write the saved model as one tar split into PREFIX.part-000, "
                                     "-001, ... (<= 15 MB each): what a GPU machine can send back")
    save_every_minutes: float = field(0.0, help="also save (and export) a checkpoint this often (0 = only at the end)")


def main(args: PretrainReaderArgs) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.build_atlas:
        from lib.reader.glyphs import PRETRAIN_HELD_OUT, available_faces, build_atlas, reader_atlas_chars, save_atlas

        faces = [f for f in available_faces() if f.name not in PRETRAIN_HELD_OUT]
        if 0 < args.atlas_faces < len(faces):  # spread over the list (its families come in runs)
            faces = [faces[int(i * len(faces) / args.atlas_faces)] for i in range(args.atlas_faces)]
        atlas = build_atlas(reader_atlas_chars(), faces)
        path = save_atlas(atlas, args.build_atlas)
        out = {"atlas": str(path), "faces": list(atlas.faces), "chars": len(atlas.chars)}
        print(json.dumps(out, ensure_ascii=False))
        return out
    if args.build_ppocr_reader:
        from lib.reader.ppocr_vision import build_ppocr_reader

        out = build_ppocr_reader(args.init, args.build_ppocr_reader)
        print(json.dumps(out, ensure_ascii=False))
        return out
    from lib.reader.pretrain import PretrainConfig, pretrain

    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    cfg = PretrainConfig(**{k: (tuple(v) if k == "freeze" else v) for k, v in dataclasses.asdict(args).items()
                            if k in fields})
    result = pretrain(cfg)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return result


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("pretrain_reader.py", extra=(FileNotFoundError, ValueError)):  # one line, exit 2
        main(parse_args(PretrainReaderArgs))
