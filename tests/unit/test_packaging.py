"""`make install` prints no warnings: what setuptools warned about is not in pyproject.toml.

A fresh `make install` was run to check the output itself; these pin the two causes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_the_license_is_an_spdx_string_as_setuptools_77_wants() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"  # a table is deprecated
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]


def test_the_editable_install_is_a_plain_path_entry() -> None:
    # A flat layout with package-dir "" = "." makes setuptools write a .pth file instead of
    # an import finder, which warns ("Editable installation ... be careful with folders").
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"": "."}
