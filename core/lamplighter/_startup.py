"""What Lamplighter does so that a process the OS starts for one run starts cheaply.

**The bytecode of the methods attrs writes for Lamplighter's own classes is kept between
runs.** attrs writes each class's ``__init__``, ``__eq__``, ``__hash__``, ``__repr__`` … as
Python source when the class is created and compiles it, and compiling is most of what
creating a class costs. The OS starts the application again for every run and every run
creates the same classes from the same source, so, as Python keeps a module's bytecode in
``__pycache__``, the code objects compiled for Lamplighter's classes are kept in
``lamplighter/__pycache__`` and reused when attrs hands over the same source again.

The class is still made by attrs, from the same source, with the same globals: only the
``compile`` step is skipped when the source and file name attrs passes are exactly those a
kept code object was compiled from. Anything else (another class, changed source, another
Python, a missing or unreadable file) is compiled as attrs would. Like bytecode, nothing is
written when ``sys.dont_write_bytecode`` is set or the directory is not writable.

**The garbage collector does not walk what Lamplighter's import makes**
(:func:`hold_collections`, :func:`resume_collections`). Importing makes thousands of objects
that live as long as the process (classes, functions, module dictionaries), and their
number alone brings on collections that walk them, and walk them again as they age. While
Lamplighter imports itself (from this module on, which is the first: typing, attrs, the
model, the facade; the plugins and monitors of a run the OS launched; asyncio for a
process's first async run) no collection runs, and afterwards
everything made meanwhile counts as old, to be looked at by the collector's full
collections only; the cycles left behind (attrs replaces each class it builds) are freed by
the next one, in a process the OS launched for one run at its exit. So the run starts
sooner; the process as a whole does about the same work. Nothing changes when the
application turned the collector off or froze objects itself.

``lamplighter/__init__`` imports this module first, and uses both before anything else is
imported.
"""

from __future__ import annotations

import gc

# Collections are held from here, the first module Lamplighter's import runs, so that what
# this module imports (typing …) is held too; lamplighter/__init__ takes the hold over
# (held_at_import) and resumes it.
_held_at_import = gc.isenabled()
gc.disable()

import __future__  # noqa: E402

import builtins  # noqa: E402
import marshal  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from types import CodeType  # noqa: E402
from typing import Any  # noqa: E402

# The file names attrs gives the methods of a class: "<attrs generated methods mod.Qual>".
_PREFIX = "<attrs generated "
# Classes of these modules only: an application's own classes are compiled as usual.
_OWN = ("lamplighter.", "lamplighter_")
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag

# attrs writes into ``__hash__`` a number that differs in every process (the hash of a
# string); it is kept out of the comparison and put into the kept code in its place.
_TYPE_HASH = "hash((\n"

_compile = builtins.compile
# Named as bytecode is: by interpreter and, under -O, by optimization level.
_OPT = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
_path = os.path.join(
    os.path.dirname(__file__),
    "__pycache__",
    f"attrs-methods.{sys.implementation.cache_tag}{_OPT}.bin",
)
# file name -> (source with the type hash as 0, code or its marshalled bytes, the type hash
# in that code)
_kept: dict[str, tuple[str, CodeType | bytes, int]] = {}
_dirty = False
_flags = 0  # the __future__ flags attrs' own module compiles with


def _cached_compile(source: Any, filename: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
    global _dirty
    if args or kwargs:
        return _compile(source, filename, mode, *args, **kwargs)
    if (
        mode != "exec"
        or not isinstance(source, str)
        or not isinstance(filename, str)
        or not filename.startswith(_PREFIX)
        or not filename[len(_PREFIX) :].partition(" ")[2].startswith(_OWN)
    ):
        # The flags compile() would have inherited from attrs' module, which calls it.
        return _compile(source, filename, mode, _flags, True)
    key, type_hash = _without_type_hash(source)
    if not key:
        return _compile(source, filename, mode, _flags, True)
    kept = _kept.get(filename)
    if kept is not None and kept[0] == key:
        code: Any = kept[1]
        if isinstance(code, bytes):  # as read from the file: each is loaded when used
            try:
                code = marshal.loads(code)
            except (EOFError, ValueError, TypeError):
                code = None
        if isinstance(code, CodeType) and code.co_filename == filename:
            if kept[2] == type_hash:
                return code
            return _with_type_hash(code, kept[2], type_hash)
    code = _compile(source, filename, mode, _flags, True)
    _kept[filename] = (key, code, type_hash)
    _dirty = True
    return code


def _without_type_hash(source: str) -> tuple[str, int]:
    """``source`` with the number that starts its ``__hash__`` tuple as 0, and that number
    (0 if there is none); ``""`` when there is more than one such tuple."""
    start = source.find(_TYPE_HASH)
    if start < 0:
        return source, 0
    start += len(_TYPE_HASH)
    end = source.find(",\n", start)
    if end < 0 or source.find(_TYPE_HASH, end) >= 0:
        return "", 0
    try:
        type_hash = int(source[start:end])
    except ValueError:
        return "", 0
    return f"{source[:start]}0{source[end:]}", type_hash


def _with_type_hash(code: CodeType, old: int, new: int) -> CodeType:
    """``code`` with the constant ``old`` of its ``__hash__`` function replaced by ``new``."""
    consts = list(code.co_consts)
    for index, const in enumerate(consts):
        if isinstance(const, CodeType):
            if const.co_name == "__hash__":
                inner = [new if type(c) is int and c == old else c for c in const.co_consts]
                consts[index] = const.replace(co_consts=tuple(inner))
            else:
                consts[index] = _with_type_hash(const, old, new)
    return code.replace(co_consts=tuple(consts))


def _load() -> None:
    try:
        with open(_path, "rb") as file:
            # Read whole: marshal.load reads a file object one small piece per object.
            kept = marshal.loads(file.read())
    except (OSError, EOFError, ValueError, TypeError):
        return
    if isinstance(kept, dict):
        for filename, entry in kept.items():
            if (
                isinstance(filename, str)
                and isinstance(entry, tuple)
                and len(entry) == 3
                and isinstance(entry[0], str)
                and isinstance(entry[1], bytes)
                and type(entry[2]) is int
            ):
                _kept[filename] = entry


def save() -> None:
    """Write the kept code objects, if any was compiled in this process (and bytecode may
    be written)."""
    global _dirty
    if not _dirty or sys.dont_write_bytecode:
        return
    temporary = f"{_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_path), exist_ok=True)
        with open(temporary, "wb") as file:
            marshal.dump(
                {
                    filename: (key, code if isinstance(code, bytes) else marshal.dumps(code), th)
                    for filename, (key, code, th) in _kept.items()
                },
                file,
            )
        os.replace(temporary, _path)
        _dirty = False
    except (OSError, ValueError):
        try:
            os.unlink(temporary)
        except OSError:
            pass


def held_at_import() -> bool:
    """Whether this module's import turned the collector off, as :func:`hold_collections`
    would have (for :func:`resume_collections`); True once at most."""
    global _held_at_import
    held, _held_at_import = _held_at_import, False
    return held


def hold_collections() -> bool:
    """Turn the garbage collector off if it is on; hand the result to
    :func:`resume_collections`, in a ``finally``."""
    if gc.isenabled():
        gc.disable()
        return True
    return False


def resume_collections(held: bool) -> None:
    """Turn the collector back on if :func:`hold_collections` turned it off, with every
    object it tracks counted as old.

    ``gc.freeze()`` then ``gc.unfreeze()`` moves every tracked object into the oldest
    generation without walking any, and starts the count of new ones afresh; a collector
    merely turned back on would walk all that was made meanwhile at its next allocation.
    Not when the application froze objects itself (before forking, say): those stay where
    it put them.
    """
    if not held:
        return
    # (An interpreter without gc.freeze, PyPy's, just turns the collector back on.)
    if hasattr(gc, "freeze") and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


def install() -> None:
    """Make attrs reuse kept bytecode for Lamplighter's classes from now on.

    attrs compiles through the module-level name ``compile`` of ``attr._make``; if a
    version of attrs no longer does, this changes nothing.
    """
    global _flags
    import atexit

    import attr._make as make

    compile_and_eval = getattr(make, "_compile_and_eval", None)
    code = getattr(compile_and_eval, "__code__", None)
    if not isinstance(code, CodeType) or "compile" not in code.co_names:
        return
    if getattr(make, "compile", None) is _cached_compile:
        return
    _flags = code.co_flags & _FUTURE_FLAGS
    _load()
    make.compile = _cached_compile  # type: ignore[attr-defined]
    atexit.register(save)
