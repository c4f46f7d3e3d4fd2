"""Packaging beyond setup.cfg: the top-level `recipes/` folder ships inside the wheel as `lensfm_hf/recipes/`.

Why here: setup.cfg cannot add a package mapped from another folder to `packages = find:`. With the recipes as
package data, `lensfm pretrain mae` finds `lensfm_hf/recipes/pretrain/mae.yaml` in a wheel install, and the
source checkout keeps one copy of every recipe (no symlink, which wheels do not carry).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["lensfm_hf", "lensfm_hf.*"]) + ["lensfm_hf.recipes"],
    package_dir={"lensfm_hf.recipes": "recipes"},
    package_data={"lensfm_hf.recipes": ["*/*.yaml"]},
    py_modules=["lensfm_cli"],  # the console script's launcher (see lensfm_cli.py: a fast --help)
)
