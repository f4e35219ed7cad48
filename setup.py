"""What pyproject.toml cannot say: the `lib*` packages plus `configs/` shipped inside them as `lib/configs` (the
default training config and OCR prompt that lib/ falls back on; lib/shipped.py finds them in either place)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["lib", "lib.*"]), "lib.configs"],
      package_dir={"lib.configs": "configs"},
      package_data={"lib.configs": ["**/*.json", "**/*.yml", "**/*.yaml", "**/*.md"]})
