"""The fast entry-point scan agrees with importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from lamplighter._entry_points import NeedsMetadata, scan


def _dist(site: Path, dirname: str, entry_points: str | None) -> None:
    info = site / dirname
    info.mkdir(parents=True)
    name, _, version = dirname.rsplit(".", 1)[0].partition("-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_reads_the_group_first_distribution_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _dist(
        first,
        "Alpha_Plugin-1.0.dist-info",
        "[console_scripts]\nalpha = alpha:main\n\n"
        "[lamplighter]\n# a comment\nalpha = alpha.plugin\nbeta=alpha.other:hooks\n",
    )
    _dist(first, "nothing-2.0.dist-info", None)
    _dist(second, "alpha_plugin-0.9.dist-info", "[lamplighter]\nold = alpha.old\n")
    _dist(second, "gamma-3.egg-info", "[lamplighter]\ngamma = gamma.plugin\n")
    found = scan("lamplighter", [str(first), str(second), str(tmp_path / "missing")])
    assert [(ep.name, ep.value, ep.distribution) for ep in found] == [
        ("alpha", "alpha.plugin", "alpha-plugin"),
        ("beta", "alpha.other:hooks", "alpha-plugin"),
        ("gamma", "gamma.plugin", "gamma"),
    ]
    # importlib.metadata sees the same entry points on the same path.
    expected = {
        (ep.name, ep.value)
        for ep in importlib.metadata.distributions(path=[str(first), str(second)])
        for ep in ep.entry_points
        if ep.group == "lamplighter"
    }
    assert {(ep.name, ep.value) for ep in found} >= {("alpha", "alpha.plugin")}
    assert {(ep.name, ep.value) for ep in found} <= expected


def test_a_zip_on_the_path_needs_importlib_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "app.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(NeedsMetadata, match="is a file"):
        scan("lamplighter", [str(archive)])


def test_load_imports_module_and_attribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "epmod.py").write_text("class Hooks:\n    value = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _dist(tmp_path, "epmod-1.dist-info", "[lamplighter]\nm = epmod\nh = epmod:Hooks.value\n")
    found = {ep.name: ep for ep in scan("lamplighter", [str(tmp_path)])}
    assert found["m"].load() is sys.modules["epmod"]
    assert found["h"].load() == 42


def test_agrees_with_importlib_metadata_on_this_interpreter() -> None:
    try:
        fast = {(ep.name, ep.value) for ep in scan("lamplighter")}
    except NeedsMetadata:
        pytest.skip("this interpreter has a zip on sys.path")
    slow = {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group="lamplighter")}
    assert fast == slow
