"""Evaluation: backends (servers, in-process models, OCR engines), the resumable journal, the runner, output
post-processors and a local OpenAI-compatible test server. Entry points: core/evaluate.py, core/inference.py."""
