"""What Lamplighter does to start cheaply: the methods attrs writes for its classes are
compiled once and kept, and the collector does not walk what its import makes."""

from __future__ import annotations

import marshal
import sys
from pathlib import Path
from types import CodeType
from typing import Any

import attrs
import pytest

from lamplighter import _startup


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be positive")


def _make_point(module: str = "lamplighter._kept_test") -> type:
    @attrs.frozen
    class Point:
        __module__ = module
        x: int = attrs.field(validator=_positive)
        y: str = attrs.field(default="a", converter=str)

    return Point


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A fresh cache in ``tmp_path``; returns the file names compiled for real."""
    import attr._make as make

    assert make.compile is _startup._cached_compile  # installed by `import lamplighter`
    names: list[str] = []
    real = _startup._compile

    def counting(source: Any, filename: Any, *args: Any) -> Any:
        names.append(filename)
        return real(source, filename, *args)

    monkeypatch.setattr(_startup, "_compile", counting)
    monkeypatch.setattr(_startup, "_kept", {})
    monkeypatch.setattr(_startup, "_dirty", False)
    monkeypatch.setattr(_startup, "_path", str(tmp_path / "__pycache__" / "methods.bin"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return names


def _own(names: list[str]) -> list[str]:
    return [n for n in names if "lamplighter._kept_test" in n]


def _same_code(a: CodeType, b: CodeType) -> bool:
    if (a.co_code, a.co_names, a.co_varnames, a.co_filename, a.co_flags) != (
        b.co_code,
        b.co_names,
        b.co_varnames,
        b.co_filename,
        b.co_flags,
    ):
        return False
    if len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts, strict=True):
        if isinstance(x, CodeType):
            if not (isinstance(y, CodeType) and _same_code(x, y)):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


def test_a_class_made_again_reuses_the_kept_code(compiled: list[str]) -> None:
    first = _make_point()
    assert len(_own(compiled)) == 1
    _startup.save()
    _startup._kept.clear()
    _startup._load()  # as a new process would
    again = _make_point()
    assert len(_own(compiled)) == 1  # nothing compiled the second time
    for method in ("__init__", "__eq__", "__hash__", "__repr__"):
        assert _same_code(getattr(first, method).__code__, getattr(again, method).__code__)
    # ... and the class behaves as attrs made it
    point = again(2, 5)
    assert point == again(2, "5")
    assert hash(point) == hash(again(2, "5"))
    assert repr(point) == "Point(x=2, y='5')"
    with pytest.raises(ValueError, match="x must be positive"):
        again(0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        point.x = 3  # type: ignore[attr-defined]
    assert attrs.evolve(point, x=3) == again(3, "5")
    assert [f.name for f in attrs.fields(again)] == ["x", "y"]


def test_the_per_process_type_hash_is_put_into_the_kept_code(compiled: list[str]) -> None:
    cls = _make_point()
    filename = cls.__init__.__code__.co_filename
    source, _, type_hash = _startup._kept[filename]
    assert type_hash != 0
    # The source another process would hand over: the same but for the type hash.
    other = source.replace("hash((\n0,\n", f"hash((\n                {type_hash + 1},\n")
    assert "hash((\n0,\n" in source
    assert other != source
    real = _startup._cached_compile(other, filename, "exec")
    assert len(_own(compiled)) == 1  # reused, not compiled
    expected = compile(other, filename, "exec", _startup._flags, True)
    assert _same_code(real, expected)
    hash_code = next(c for c in real.co_consts if getattr(c, "co_name", "") == "__hash__")
    assert type_hash + 1 in hash_code.co_consts
    assert type_hash not in hash_code.co_consts


def test_changed_source_is_compiled_again(compiled: list[str]) -> None:
    _make_point()

    @attrs.frozen
    class Point:  # same name, other fields
        __module__ = "lamplighter._kept_test"
        z: int = 0

    assert len(_own(compiled)) == 2
    assert repr(Point(4)) == "Point(z=4)"


def test_other_modules_classes_are_not_kept(compiled: list[str]) -> None:
    cls = _make_point(module="someapp.model")
    assert compiled == [cls.__init__.__code__.co_filename]  # compiled, as attrs would
    assert _startup._kept == {}
    assert repr(cls(1)) == "Point(x=1, y='a')"


def test_nothing_is_written_when_bytecode_is_not(
    compiled: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_point()
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    _startup.save()
    assert not Path(_startup._path).exists()


def test_an_unwritable_directory_is_not_an_error(
    compiled: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(_startup, "_path", str(blocker / "__pycache__" / "methods.bin"))
    _make_point()
    _startup.save()  # no exception
    assert list(tmp_path.iterdir()) == [blocker]


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", marshal.dumps({"x": ("a", "not code", 1)}), marshal.dumps([1, 2])],
)
def test_a_damaged_file_is_ignored(compiled: list[str], content: bytes) -> None:
    path = Path(_startup._path)
    path.parent.mkdir()
    path.write_bytes(content)
    _startup._load()
    cls = _make_point()
    assert len(_own(compiled)) == 1
    assert cls(1) == cls(1)
    _startup.save()  # replaced by a good one
    _startup._kept.clear()
    _startup._load()
    assert cls.__init__.__code__.co_filename in _startup._kept


def test_a_damaged_entry_is_compiled_again(compiled: list[str]) -> None:
    cls = _make_point()
    _startup.save()
    path = Path(_startup._path)
    kept = marshal.loads(path.read_bytes())
    filename = cls.__init__.__code__.co_filename
    key, code, type_hash = kept[filename]
    kept[filename] = (key, code[: len(code) // 2], type_hash)
    path.write_bytes(marshal.dumps(kept))
    _startup._kept.clear()
    _startup._load()
    again = _make_point()
    assert len(_own(compiled)) == 2
    assert repr(again(1)) == "Point(x=1, y='a')"


# --------------------------------------------------------------------------------------------
# garbage collections during the import
# --------------------------------------------------------------------------------------------


def _in_fresh_process(code: str) -> Any:
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(result))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_import_leaves_the_collector_as_the_application_had_it() -> None:
    # model.__dir__ is among the last objects the import makes: young, had the collector
    # run meanwhile; counted as old instead.
    on = _in_fresh_process(
        "import gc, lamplighter, lamplighter.model as m\n"
        "result = [gc.isenabled(), any(o is m.__dir__ for o in gc.get_objects(generation=2))]"
    )
    assert on == [True, True]
    off = _in_fresh_process(
        "import gc\ngc.disable()\nimport lamplighter\n"
        "from lamplighter import Lamplighter\nresult = gc.isenabled()"
    )
    assert off is False


def test_import_leaves_what_the_application_froze_frozen() -> None:
    counts = _in_fresh_process(
        "import gc\nkept = [[] for _ in range(1000)]\ngc.freeze()\nbefore = gc.get_freeze_count()\n"
        "import lamplighter\nfrom lamplighter import Lamplighter\n"
        "result = [before, gc.get_freeze_count(), gc.isenabled()]"
    )
    before, after, enabled = counts
    # Neither thawed (0) nor joined by the thousands of objects the import made; some of
    # the frozen ones may have died since.
    assert before > 1000 and before // 2 < after <= before and enabled is True


def test_what_is_made_while_held_counts_as_old_and_its_garbage_is_still_freed() -> None:
    import gc
    import weakref

    class Node:
        pass

    held = _startup.hold_collections()
    assert held and not gc.isenabled()
    try:
        kept = [Node()]
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]
        freed = weakref.ref(cycle)
        del cycle
    finally:
        _startup.resume_collections(held)
    assert gc.isenabled()
    assert any(o is kept for o in gc.get_objects(generation=2))
    assert freed() is not None  # no collection walked it yet ...
    gc.collect()
    assert freed() is None  # ... and the next full one frees it


def test_resuming_what_was_not_held_changes_nothing() -> None:
    import gc

    gc.disable()
    try:
        assert _startup.hold_collections() is False
        _startup.resume_collections(False)
        assert not gc.isenabled()
    finally:
        gc.enable()


# An application whose one task reports, from inside run(), what ``REPORT`` says.
_APP = """
import gc, sys
from lamplighter import Lamplighter, Success, is_scheduler_invocation

class SyncTask:
    def run(self, ctx):
        sys.stdout.write(str(REPORT))
        return Success()

class AsyncTask:
    async def run(self, ctx):
        import asyncio
        sys.stdout.write(str(REPORT))
        return Success()

app = Lamplighter(app_id="com.example.kept", data_dir=sys.argv[1])
app.register("task", AsyncTask if "async" in sys.argv[2:3] else SyncTask)
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
"""


def _os_runs(
    tmp_path: Path, kind: str, report: str, environ: dict[str, str] | None = None, runs: int = 1
) -> list[str]:
    """What the task reported in each of ``runs`` runs started as the OS starts them."""
    import subprocess

    from lamplighter import TaskRequest
    from lamplighter.testing import VirtualScheduler

    scheduler = VirtualScheduler(app_id="com.example.kept", data_dir=tmp_path)
    scheduler.register("task", object)
    scheduler.start()
    scheduler.schedule(TaskRequest.on_login("task"))
    scheduler.shutdown()
    script = tmp_path / "app.py"
    script.write_text(_APP.replace("REPORT", report))
    command = [sys.executable, str(script), str(tmp_path), kind, "--lamplighter-run", "task"]
    return [
        subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=environ, check=True
        ).stdout
        for _ in range(runs)
    ]


def test_a_run_the_os_launches_again_compiles_none_of_lamplighters_methods(
    tmp_path: Path,
) -> None:
    import os

    import lamplighter

    cache = Path(lamplighter.__file__).parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    if not os.access(cache, os.W_OK):
        pytest.skip("the installed package's __pycache__ is read-only")
    # As an installed application's runs: bytecode may be written (the first run keeps
    # what it compiled), and in a fresh process every time.
    environ = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("LAMPLIGHTER_")
    }
    # Whether the process compiled any method of Lamplighter's own classes.
    compiled = _os_runs(
        tmp_path, "sync", 'sys.modules["lamplighter._startup"]._dirty', environ, runs=2
    )
    assert compiled[1] == "False"  # every class's methods came from what the first kept


def test_an_async_run_imports_asyncio_without_collections(tmp_path: Path) -> None:
    # asyncio.__all__ is among the last objects importing asyncio makes: young, had the
    # collector run meanwhile; counted as old instead.
    report = "(any(o is asyncio.__all__ for o in gc.get_objects(generation=2)), gc.isenabled())"
    assert _os_runs(tmp_path, "async", report) == ["(True, True)"]


def test_import_runs_no_collection_from_its_first_module_on() -> None:
    seen = _in_fresh_process(
        "import gc\nseen = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and seen.append(info))\n"
        "import lamplighter\nfrom lamplighter import Lamplighter\n"
        "result = [seen, gc.isenabled()]"
    )
    assert seen == [[], True]


def test_an_os_launched_run_loads_its_plugins_without_collections(tmp_path: Path) -> None:
    # The built-in plugin module's __all__ is among the first objects loading the plugins
    # makes: young, had the collector run meanwhile; counted as old instead.
    report = (
        "(any(o is sys.modules['lamplighter._device_plugin'].__all__ "
        "for o in gc.get_objects(generation=2)), gc.isenabled())"
    )
    assert _os_runs(tmp_path, "sync", report) == ["(True, True)"]
