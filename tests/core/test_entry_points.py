"""The fast entry-point scan agrees with importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable
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


# A scan is kept between processes, with the times of what it read or looked for.


def _age(root: Path) -> None:
    """Date everything under ``root`` a minute back: a scan keeps nothing it read within
    the file system's last clock ticks."""
    import os
    import time

    past = time.time() - 60
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past))


def _found(site: list[Path], kept: Path) -> list[tuple[str, str, str]]:
    return [
        (ep.name, ep.value, ep.distribution)
        for ep in scan("lamplighter", [str(p) for p in site], kept=str(kept))
    ]


@pytest.fixture
def writes_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


@pytest.mark.usefixtures("writes_bytecode")
def test_a_kept_scan_is_used_while_nothing_it_read_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lamplighter._entry_points as module

    site, kept = tmp_path / "site", tmp_path / "kept.bin"
    _dist(site, "alpha-1.dist-info", "[lamplighter]\nalpha = alpha.plugin\n")
    _dist(site, "beta-1.dist-info", None)
    _age(tmp_path)
    assert _found([site, tmp_path / "missing"], kept) == [("alpha", "alpha.plugin", "alpha")]
    assert kept.exists()

    def no_reading(*args: object) -> object:
        raise AssertionError("read again")

    monkeypatch.setattr(module, "_scan", no_reading)
    assert _found([site, tmp_path / "missing"], kept) == [("alpha", "alpha.plugin", "alpha")]
    # A directory of the path that changed but lists the same distributions.
    (site / "notes.txt").write_text("written beside the application")
    assert _found([site, tmp_path / "missing"], kept) == [("alpha", "alpha.plugin", "alpha")]


@pytest.mark.usefixtures("writes_bytecode")
def test_a_kept_scan_sees_every_change_of_what_is_installed(tmp_path: Path) -> None:
    site, later, kept = tmp_path / "site", tmp_path / "later", tmp_path / "kept.bin"
    _dist(site, "alpha-1.dist-info", "[lamplighter]\nalpha = alpha.plugin\n")
    _dist(site, "beta-1.dist-info", None)
    path = [site, later]

    def changed(change: Callable[[], None]) -> list[tuple[str, str, str]]:
        _age(tmp_path)
        _found(path, kept)  # kept as it is now
        change()
        return _found(path, kept)

    assert changed(
        lambda: (site / "alpha-1.dist-info" / "entry_points.txt").write_text(
            "[lamplighter]\nalpha = alpha.hooks\n"
        )
    ) == [("alpha", "alpha.hooks", "alpha")]
    assert changed(
        lambda: (site / "beta-1.dist-info" / "entry_points.txt").write_text(
            "[lamplighter]\nbeta = beta.plugin\n"
        )
    ) == [("alpha", "alpha.hooks", "alpha"), ("beta", "beta.plugin", "beta")]
    assert changed(
        lambda: _dist(site, "gamma-1.dist-info", "[lamplighter]\ngamma = gamma.plugin\n")
    ) == [
        ("alpha", "alpha.hooks", "alpha"),
        ("beta", "beta.plugin", "beta"),
        ("gamma", "gamma.plugin", "gamma"),
    ]
    assert changed(lambda: _dist(later, "delta-1.dist-info", "[lamplighter]\nd = delta\n"))[-1] == (
        "d",
        "delta",
        "delta",
    )
    assert changed(lambda: (site / "alpha-1.dist-info" / "entry_points.txt").unlink()) == [
        ("beta", "beta.plugin", "beta"),
        ("gamma", "gamma.plugin", "gamma"),
        ("d", "delta", "delta"),
    ]


def test_nothing_is_kept_where_bytecode_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    site, kept = tmp_path / "site", tmp_path / "kept.bin"
    _dist(site, "alpha-1.dist-info", "[lamplighter]\nalpha = alpha.plugin\n")
    _age(tmp_path)
    assert _found([site], kept) == [("alpha", "alpha.plugin", "alpha")]
    assert not kept.exists()


@pytest.mark.usefixtures("writes_bytecode")
def test_nothing_is_kept_of_a_file_changed_within_the_last_clock_ticks(tmp_path: Path) -> None:
    site, kept = tmp_path / "site", tmp_path / "kept.bin"
    _age(tmp_path)
    _dist(site, "alpha-1.dist-info", "[lamplighter]\nalpha = alpha.plugin\n")
    assert _found([site], kept) == [("alpha", "alpha.plugin", "alpha")]
    assert not kept.exists()


@pytest.mark.usefixtures("writes_bytecode")
def test_the_scans_of_a_few_paths_are_kept_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lamplighter._entry_points as module

    monkeypatch.setattr(module, "_KEPT_PATHS", 2)
    kept = tmp_path / "kept.bin"
    sites = [tmp_path / name for name in ("a", "b", "c")]
    for site in sites:
        _dist(site, f"{site.name}-1.dist-info", f"[lamplighter]\n{site.name} = {site.name}.p\n")
    _age(tmp_path)
    expected = [[(s.name, f"{s.name}.p", s.name)] for s in sites]
    assert [_found([site], kept) for site in sites[:2]] == expected[:2]
    scans: list[list[str]] = []
    scan_again = module._scan
    monkeypatch.setattr(
        module,
        "_scan",
        lambda group, entries, stamps: scans.append(entries) or scan_again(group, entries, stamps),
    )
    assert [_found([site], kept) for site in sites[:2]] == expected[:2]
    assert scans == []
    assert _found([sites[2]], kept) == expected[2]  # the oldest goes
    assert [_found([site], kept) for site in sites[1:]] == expected[1:]
    assert _found([sites[0]], kept) == expected[0]
    assert scans == [[str(sites[2])], [str(sites[0])]]


@pytest.mark.usefixtures("writes_bytecode")
def test_an_unreadable_kept_file_is_read_past(tmp_path: Path) -> None:
    site, kept = tmp_path / "site", tmp_path / "kept.bin"
    _dist(site, "alpha-1.dist-info", "[lamplighter]\nalpha = alpha.plugin\n")
    _age(tmp_path)
    for content in (b"not marshal", b"\xe9\x00\x00\x00\x00"):  # garbage; an int
        kept.write_bytes(content)
        assert _found([site], kept) == [("alpha", "alpha.plugin", "alpha")]
        assert _found([site], kept) == [("alpha", "alpha.plugin", "alpha")]
