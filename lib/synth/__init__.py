"""Synthetic Traditional/Simplified Chinese government documents (公文) with exact labels.

- content.py  — what a document says (headers, numbered items, amounts in formal numerals, tables, seal text)
- page.py     — how it is laid out and drawn, and what each element's label is (uses lib/render.py)
- seal.py     — seals (square / circle / oval with arc text) and ink compositing
- degrade.py  — scan degradations with configured probabilities
- generate.py — parallel, seed-deterministic dataset writer (raw JSON format)
"""

from lib.synth.config import SynthConfig
from lib.synth.generate import generate_dataset, make_records

__all__ = ["SynthConfig", "generate_dataset", "make_records"]
