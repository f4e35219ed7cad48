"""Synthetic Traditional/Simplified Chinese government documents (公文) with exact labels.

- config.py   — SynthConfig: page geometry, element and degradation probabilities (light import, for --help)
- content.py  — what a document says (headers, numbered items, amounts in formal numerals, tables, seal text)
- page.py     — how it is laid out and drawn, and what each element's label is (uses lib/render.py)
- seal.py     — seals (square / circle / oval with arc text) and ink compositing
- degrade.py  — scan degradations with configured probabilities
- generate.py — parallel, seed-deterministic dataset writer (raw JSON format)
"""

from lib.synth.config import SynthConfig

__all__ = ["SynthConfig", "generate_dataset", "make_records"]


def __getattr__(name):  # heavy modules (numpy, cv2, PIL) load on first use only
    if name in ("generate_dataset", "make_records"):
        from lib.synth import generate

        return getattr(generate, name)
    raise AttributeError(name)
