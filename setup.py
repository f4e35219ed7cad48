"""What pyproject.toml cannot say: the `lib*` packages plus `configs/` shipped inside them as `lib/configs` (the
default training config and OCR prompt that lib/ falls back on; lib/shipped.py finds them in either place)."""

from setuptools import find_namespace_packages, find_packages, setup

CONFIGS = ["lib.configs", *(f"lib.configs.{p}" for p in find_namespace_packages(where="configs"))]

setup(packages=[*find_packages(include=["lib", "lib.*"]), *CONFIGS],
      package_dir={"lib.configs": "configs"},
      package_data={p: ["*.json", "*.yml", "*.yaml", "*.md"] for p in CONFIGS})
