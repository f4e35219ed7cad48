"""Does transformers build Gemma 3's attention masks right for padding-free packed rows? (issue 18, packing)

Packs two 8-token samples into one row (position_ids restart at the second sample, no attention_mask: transformers'
packed-sequence detection) and compares the packed row's full-attention and sliding-window masks with each sample's
own masks. Prints one line per case and mask kind; exit status 1 when a packed mask differs.

    python -m core.benchmarks.check_packed_masks

Measured on the Dev VM with transformers 5.25.0: image at the same position in both samples -> both masks equal;
image at another position in the second sample -> the sliding-window mask is wrong (Gemma 3 passes its image-block
overlay as `or_mask_function`, which `create_causal_mask` calls with per-sequence positions, so the block ids are
looked up at the first sample's positions). Packing Gemma 3 therefore needs its own block mask (FlexAttention) or
rows whose samples share one prompt/image layout.
"""

from __future__ import annotations

import argparse
import sys


def _masks(cfg, token_type_ids, position_ids):
    import torch
    from transformers.models.gemma3.modeling_gemma3 import (create_masks_for_vision_model,
                                                            get_block_sequence_ids_for_mask)

    emb = torch.zeros(1, token_type_ids.shape[1], cfg.hidden_size)
    blocks = get_block_sequence_ids_for_mask(token_type_ids)
    out = create_masks_for_vision_model(config=cfg, inputs_embeds=emb, attention_mask=None, cache=None,
                                        position_ids=position_ids, block_sequence_ids=blocks)
    return {k: (v if v.dtype == torch.bool else v == 0)[0, 0] for k, v in out.items()}


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    import torch
    import transformers
    from transformers import Gemma3TextConfig

    cfg = Gemma3TextConfig(hidden_size=8, num_attention_heads=1, num_key_value_heads=1, head_dim=8,
                           num_hidden_layers=2, sliding_window=6, vocab_size=10)
    cfg._attn_implementation = "sdpa"
    first = torch.tensor([[0, 1, 1, 1, 0, 0, 0, 0]])  # 1 text token, 3 image tokens, 4 text tokens
    cases = {"same layout": first, "other layout": torch.tensor([[0, 0, 0, 1, 1, 1, 0, 0]])}
    n, bad = first.shape[1], False
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for name, second in cases.items():
        packed = _masks(cfg, torch.cat([first, second], 1), torch.cat([torch.arange(n), torch.arange(n)])[None])
        alone = (_masks(cfg, first, torch.arange(n)[None]), _masks(cfg, second, torch.arange(n)[None]))
        for kind, m in packed.items():
            ok = (torch.equal(m[:n, :n], alone[0][kind]) and torch.equal(m[n:, n:], alone[1][kind])
                  and not m[n:, :n].any() and not m[:n, n:].any())
            print(f"{name:13s} {kind:18s} packed mask == per-sample masks: {ok}")
            bad = bad or not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
