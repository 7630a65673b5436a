"""Task files, run locks and run history of one application.

Layout under the application's data directory (``<data_dir>/<app_id>/``, mode 0700)::

    tasks/<task_id>.json        one document per task (mode 0600), written atomically
    tasks/<task_id>.json.corrupt-<UTC timestamp>
                                a task file that could not be read, moved aside
    history/<task_id>.jsonl     the task's recent firings, one JSON record per line
    locks/<task_id>.run         held while a run of the task is in progress
    locks/<task_id>.write       held while the task file is being rewritten

Every write goes to a temporary file in the same directory, is flushed to disk and then
renamed over the old file, so a reader (or a process killed half-way through writing) only
ever sees a complete old or a complete new file. A file that cannot be read marks only its own
task broken: it is moved aside, never overwritten, and listed by :meth:`TaskStore.load_all`
until someone deletes it. A file written by a newer release is refused and left in place.

The base directory is, in order: the ``data_dir`` argument, the ``LAMPLIGHTER_DATA_DIR``
environment variable, ``platformdirs.user_data_dir("lamplighter")``.

What these files hold (:class:`TaskDocument`, :class:`ExecutionRecord`) is defined in
:mod:`lamplighter.store.records` and re-exported here.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from lamplighter import _jsonlite
from lamplighter._dates import UTC, datetime
from lamplighter._files import open_regular, read_regular
from lamplighter._log import lazy_logger
from lamplighter._schema import SCHEMA_VERSION, StoredDataError, UnsupportedSchemaVersion
from lamplighter.ids import TaskId, validate_app_id
from lamplighter.store.records import (
    ExecutionRecord,
    StoredRequest,
    TaskDocument,
    history_line_problem,
    state_problem,
)

if TYPE_CHECKING:
    # Created on first use (see __getattr__); their public home is this module.
    from lamplighter.store._scan_records import BrokenTask as BrokenTask
    from lamplighter.store._scan_records import StoreScan as StoreScan

__all__ = [
    "DATA_DIR_ENV",
    "HISTORY_LIMIT",
    "BrokenTask",
    "CorruptTaskFile",
    "ExecutionRecord",
    "MemoryTaskStore",
    "Record",
    "RunLock",
    "StoreScan",
    "StoredDataError",
    "StoredRequest",
    "TaskDocument",
    "TaskStore",
    "default_data_dir",
    "full_record",
    "new_record",
    "read_regular",
    "sync_directories",
]

logger = lazy_logger(__name__)

#: Environment variable that moves every application's data directory (tests, sandboxes).
DATA_DIR_ENV = "LAMPLIGHTER_DATA_DIR"
#: Firings kept per task by :meth:`TaskStore.history`.
HISTORY_LIMIT = 100
# The history file is compacted to HISTORY_LIMIT lines once it grows past this size.
_HISTORY_COMPACT_BYTES = 96 * 1024
_TMP_SUFFIX = ".tmp"
_DOCUMENT_CACHE_SIZE = 10_000
_CORRUPT_MARK = ".corrupt-"
_WINDOWS = sys.platform == "win32"


class CorruptTaskFile(StoredDataError):
    """A task file could not be read; it has been moved aside (see ``moved_to``)."""

    def __init__(self, message: str, *, path: Path, moved_to: Path | None) -> None:
        super().__init__(message)
        self.path = path
        self.moved_to = moved_to


def default_data_dir() -> Path:
    """The base directory that holds every application's data directory."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("lamplighter", appauthor=False))


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _WINDOWS:
        # mkdir's mode is filtered by the umask, and an existing directory keeps its mode.
        mode = path.stat().st_mode & 0o777
        if mode != 0o700:
            os.chmod(path, 0o700)


def _fsync_dir(path: Path) -> None:
    if _WINDOWS:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` (fsynced when ``durable``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{_TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def sync_directories(directories: Sequence[Path], files: Sequence[Path] = ()) -> None:
    """Flush what was just written under ``directories`` to disk, for a batch of files at
    once: one ``syncfs`` per file system on Linux (far cheaper than an fsync per file);
    elsewhere an fsync of each of ``files``, or ``os.sync()`` when none are named."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        seen: set[int] = set()
        synced = True
        for directory in directories:
            try:
                device = os.stat(directory).st_dev
            except FileNotFoundError:
                continue
            if device in seen:
                continue
            seen.add(device)
            fd = os.open(directory, os.O_RDONLY)
            try:
                synced = libc.syncfs(fd) == 0 and synced
            finally:
                os.close(fd)
        if synced:
            return
    if not files:
        os.sync()
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


# --------------------------------------------------------------------------------------------
# cross-process locks
# --------------------------------------------------------------------------------------------


def _lock_fd(fd: int, *, blocking: bool, shared: bool = False) -> bool:
    """Lock an open file (exclusively unless ``shared``); False if ``blocking`` is off and
    someone holds it. Windows has no shared locks: there every lock is exclusive."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.01)
    import fcntl

    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock_fd(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (comparable between calls), or None if it is gone."""
    if pid <= 0:
        return None
    if sys.platform.startswith("linux"):
        # /proc is cheaper than importing psutil on the OS launch path: field 22 of
        # /proc/<pid>/stat is the start time in clock ticks since boot.
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            return None
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            return int(fields[19]) / os.sysconf("SC_CLK_TCK")
        except (IndexError, ValueError):
            return None
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


class RunLock:
    """The per-task lock held while a run is in progress, across processes.

    :meth:`try_acquire` never waits: a run that finds the lock held is skipped. The holder
    writes its pid and process start time into the lock file so :meth:`TaskStore.is_running`
    can answer without touching the lock; the lock itself is released by the OS when the
    holder dies, however it dies.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; returns whether it was taken."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        try:
            if not _lock_fd(fd, blocking=False):
                os.close(fd)
                return False
            started = _process_start_time(os.getpid())
            # Byte 0 is the lock region on Windows; the marker starts after it.
            marker = _jsonlite.dumps_flat({"pid": os.getpid(), "started": started}).encode()
            os.ftruncate(fd, 1)
            os.lseek(fd, 1, os.SEEK_SET)
            os.write(fd, marker)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            _unlock_fd(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        if not self.try_acquire():
            raise BlockingIOError(f"a run of this task is already in progress ({self.path})")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _marker_alive(path: Path) -> bool:
    """Whether the run marker in ``path`` names a live process."""
    try:
        with open(open_regular(path), "rb") as handle:
            handle.seek(1)
            content = handle.read(4096)
    except FileNotFoundError:
        return False
    except PermissionError:
        return True  # Windows: the region is locked by a running holder
    except OSError:
        return False  # not a file a holder wrote (a directory, a FIFO): nobody runs
    pid, started = _marker_fields(content)
    if pid is None:
        return False
    actual = _process_start_time(pid)
    if actual is None:
        return False
    # A recycled pid belongs to a process started later than the recorded one.
    return started is None or abs(actual - started) < 1.0


def _marker_fields(content: bytes) -> tuple[int | None, float | None]:
    """The pid and start time a run marker records; ``(None, None)`` for anything that
    is not a marker :meth:`RunLock.try_acquire` wrote (the file is anyone's to scribble)."""
    if not content.startswith(b"{"):
        return None, None
    try:
        marker = _jsonlite.loads(content)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(marker, dict):
        return None, None
    pid, started = marker.get("pid"), marker.get("started")
    if type(pid) is not int or not 0 < pid < 1 << 31:
        return None, None
    if started is None:
        return pid, None
    if type(started) not in (int, float) or not math.isfinite(started):
        return None, None
    return pid, float(started)


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------


class TaskStore:
    """The task files, run locks and histories of one application (thread- and
    process-safe)."""

    #: Whether history records and requests are kept as the objects given (in memory)
    #: rather than as JSON-able mappings: a document's ``"request"`` may then be a
    #: :class:`StoredRequest`.
    keeps_objects = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tasks_dir = self.root / "tasks"
        self.history_dir = self.root / "history"
        self.locks_dir = self.root / "locks"
        self._ready = False
        self._thread_lock = threading.RLock()
        self._cache: dict[Path, tuple[bytes, dict[str, Any]]] = {}
        # The thread inside exclusive(), whose own writes must not wait for the lock it holds.
        self._exclusive_owner: int | None = None
        # The problems found in each history file, with the (mtime, size) they were found at.
        self._history_checks: dict[Path, tuple[tuple[int, int], list[str]]] = {}
        # Why this process moved each file aside, so later reports still say why.
        self._moved_reasons: dict[Path, str] = {}

    @classmethod
    def for_app(cls, app_id: str, data_dir: str | Path | None = None) -> TaskStore:
        """The store of ``app_id`` under ``data_dir`` (see the module docstring)."""
        app_id = validate_app_id(app_id)
        base = Path(data_dir) if data_dir is not None else default_data_dir()
        return cls(base / app_id)

    # ------------------------------------------------------------------ paths

    def _ensure_dirs(self) -> None:
        if self._ready:
            return
        for directory in (self.root, self.tasks_dir, self.history_dir, self.locks_dir):
            try:
                _make_private_dir(directory)
            except OSError as exc:  # a file in its place, no permission, a read-only disk
                raise StoredDataError(
                    f"the data folder {directory} cannot be used ({exc.strerror or exc}); "
                    "it is left as it is"
                ) from None
        self._ready = True

    def task_path(self, task_id: TaskId) -> Path:
        """The task file of ``task_id``."""
        return self.tasks_dir / f"{TaskId.of(task_id).value}.json"

    def history_path(self, task_id: TaskId) -> Path:
        """The history file of ``task_id``."""
        return self.history_dir / f"{TaskId.of(task_id).value}.jsonl"

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold every task file still: no other thread or process writes one until the
        block ends, so a batch can read task files and write them back without losing a
        change made in between (a run's outcome, say). This thread's own writes inside
        the block go ahead."""
        with self._thread_lock:
            if self._exclusive_owner == threading.get_ident():
                yield
                return
            with self._store_lock(exclusive=True):
                self._exclusive_owner = threading.get_ident()
                try:
                    yield
                finally:
                    self._exclusive_owner = None

    @contextmanager
    def _store_lock(self, *, exclusive: bool) -> Iterator[None]:
        """The store-wide lock: shared by single-task writes, exclusive for a batch."""
        if self._exclusive_owner == threading.get_ident():
            yield  # this thread holds it exclusively already
            return
        self._ensure_dirs()
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.locks_dir / "store.lock", flags, 0o600)
        except FileNotFoundError:
            # The directory went away under this process (an uninstall cleanup removed the
            # application's data): make it again.
            self._ready = False
            self._ensure_dirs()
            fd = os.open(self.locks_dir / "store.lock", flags, 0o600)
        try:
            _lock_fd(fd, blocking=True, shared=not exclusive)
            try:
                yield
            finally:
                _unlock_fd(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _write_lock(self, task_id: TaskId) -> Iterator[None]:
        self._ensure_dirs()
        path = self.locks_dir / f"{task_id.value}.write"
        with self._thread_lock, self._store_lock(exclusive=False):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            try:
                _lock_fd(fd, blocking=True)
                try:
                    yield
                finally:
                    _unlock_fd(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ documents

    def load(self, task_id: TaskId) -> dict[str, Any] | None:
        """The stored document of ``task_id``, or None if there is none.

        Raises:
            CorruptTaskFile: the file was unreadable; it has been moved aside.
            UnsupportedSchemaVersion: a newer release wrote it; it is left in place.
        """
        path = self.task_path(task_id)
        try:
            data = read_regular(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        except OSError as exc:  # a directory in its place, no permission, an I/O error
            raise StoredDataError(
                f"task file {path} cannot be read ({exc.strerror or exc}); it is left in place"
            ) from None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == data:
            return cached[1]
        document = self._parse(path, data)
        # Parsed documents are kept with the bytes they came from, so listing many tasks
        # again parses only the files whose content changed; callers treat a loaded
        # document as read-only.
        if len(self._cache) >= _DOCUMENT_CACHE_SIZE:
            self._cache.clear()
        self._cache[path] = (data, document)
        return document

    def load_quiet(self, task_id: TaskId) -> dict[str, Any] | None:
        """Like :meth:`load`, but a broken file reads as None (it is logged and, if
        corrupt, moved aside)."""
        try:
            return self.load(task_id)
        except StoredDataError as exc:
            logger.warning("lamplighter: %s", exc)
            return None

    def _parse(self, path: Path, data: bytes) -> dict[str, Any]:
        try:
            document = _jsonlite.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._move_aside(path, f"not valid JSON ({exc})") from None
        except RecursionError:
            raise self._move_aside(path, "JSON nested too deeply to read") from None
        if not isinstance(document, dict):
            raise self._move_aside(path, f"expected a JSON object, found {type(document).__name__}")
        version = document.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise UnsupportedSchemaVersion(
                f"{path}: schema_version {version} was written by a newer lamplighter; this "
                f"release reads versions up to {SCHEMA_VERSION}. The file is left untouched; "
                "upgrade lamplighter to use it"
            )
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._move_aside(path, f"schema_version is {version!r}, not a positive integer")
        for key in ("request", "state"):
            if not isinstance(document.get(key), dict):
                raise self._move_aside(path, f"{key!r} is missing or not an object")
        owner = document["request"].get("task_id")
        if isinstance(owner, str) and f"{owner}.json" != path.name:
            # A file copied or renamed from another task: running it would run this task
            # with the other's request, and record it here.
            raise self._move_aside(
                path, f"request.task_id is {owner!r}, but the file belongs to {path.stem!r}"
            )
        problem = state_problem(document)
        if problem is not None:
            raise self._move_aside(path, problem)
        return document

    def _move_aside(self, path: Path, reason: str) -> CorruptTaskFile:
        target: Path | None = path.with_name(f"{path.name}{_CORRUPT_MARK}{_utc_stamp()}")
        assert target is not None
        try:
            # os.link refuses an existing target, so an older corrupt copy is never replaced.
            os.link(path, target)
            path.unlink()
        except FileNotFoundError:
            target = None  # someone else moved it first
        except OSError as exc:
            logger.warning("lamplighter: cannot move %s aside: %s", path, exc)
            target = None
        where = f"moved to {target}" if target is not None else "left in place"
        message = f"task file {path} is corrupt: {reason}; {where}"
        if target is not None:
            self._moved_reasons[target] = message
        logger.error("lamplighter: %s", message)
        return CorruptTaskFile(message, path=path, moved_to=target)

    def save(self, task_id: TaskId, document: dict[str, Any]) -> None:
        """Write ``document`` as the task file (adds ``schema_version``)."""
        task_id = TaskId.of(task_id)
        with self._write_lock(task_id):
            self._write(task_id, document)

    def save_many(self, items: Sequence[tuple[TaskId, dict[str, Any]]]) -> None:
        """Write several task files with one flush to disk.

        Each document goes to a temporary file; the file system is then synced once (one
        ``syncfs`` on Linux, instead of an fsync per file) before each file is renamed into
        place and the directory is synced. Every file is still replaced atomically, and
        none is renamed before all are on disk. The store-wide lock is held exclusively,
        so no single-task write interleaves.
        """
        if not items:
            return
        self._ensure_dirs()
        import json  # (not on the way to a run's run(): see lamplighter._jsonlite)

        with self._thread_lock, self._store_lock(exclusive=True):
            staged: list[tuple[Path, Path]] = []
            try:
                for task_id, document in items:
                    target = self.task_path(TaskId.of(task_id))
                    body = {**document, "schema_version": SCHEMA_VERSION}
                    data = json.dumps(body, indent=1, sort_keys=True).encode()
                    staged.append((_write_temporary(target, data, durable=False), target))
                sync_directories([self.tasks_dir], [tmp for tmp, _ in staged])
                for tmp, target in staged:
                    os.replace(tmp, target)
            except BaseException:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(self.tasks_dir)

    def _write(self, task_id: TaskId, document: dict[str, Any]) -> None:
        body = {"schema_version": SCHEMA_VERSION, **document}
        body["schema_version"] = SCHEMA_VERSION
        import json  # (not on the way to a run's run(): see lamplighter._jsonlite)

        data = json.dumps(body, indent=1, sort_keys=True).encode()
        _write_atomic(self.task_path(task_id), data)

    def update(
        self,
        task_id: TaskId,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Read, change and write the task file while holding its write lock.

        ``change`` receives the current document (None if there is none) and returns the
        new one; returning None leaves the file as it is. Returns what ``change`` returned.
        """
        task_id = TaskId.of(task_id)
        with self._write_lock(task_id):
            new = change(self.load(task_id))
            if new is not None:
                self._write(task_id, new)
            return new

    def delete(self, task_id: TaskId) -> bool:
        """Remove the task file and history; returns whether a task file existed."""
        task_id = TaskId.of(task_id)
        with self._write_lock(task_id):
            try:
                self.task_path(task_id).unlink()
                existed = True
            except FileNotFoundError:
                existed = False
            self.history_path(task_id).unlink(missing_ok=True)
        self.drop_locks(task_id)
        return existed

    def drop_locks(self, task_id: TaskId) -> None:
        """Remove the lock files of a task that is gone. The run lock of a run still in
        progress stays (its holder's run ends; a later call removes it)."""
        task_id = TaskId.of(task_id)
        if self.task_path(task_id).exists():
            return  # scheduled again meanwhile
        run = self.locks_dir / f"{task_id.value}.run"
        if not _marker_alive(run):
            run.unlink(missing_ok=True)
        (self.locks_dir / f"{task_id.value}.write").unlink(missing_ok=True)

    def task_ids(self) -> list[TaskId]:
        """The ids of every task file, sorted (broken ones included)."""
        return self._scan_names()[0]

    def _scan_names(self) -> tuple[list[TaskId], list[str]]:
        """The task ids of the task files, and the names of files moved aside, sorted."""
        try:
            names = sorted(os.listdir(self.tasks_dir))
        except FileNotFoundError:
            return [], []
        except OSError as exc:  # a file in its place, no permission
            raise StoredDataError(
                f"the data folder {self.tasks_dir} cannot be listed ({exc.strerror or exc}); "
                "it is left as it is"
            ) from None
        ids: list[TaskId] = []
        moved: list[str] = []
        for name in names:
            if name.startswith("."):
                continue
            if name.endswith(".json"):
                try:
                    ids.append(TaskId(name[: -len(".json")]))
                except ValueError:
                    continue  # not one of ours
            elif _CORRUPT_MARK in name:
                moved.append(name)
        return ids, moved

    def moved_aside(self, task_id: TaskId) -> BrokenTask | None:
        """The latest file of ``task_id`` moved aside as corrupt (until someone deletes
        it), or None."""
        name = f"{TaskId.of(task_id).value}.json"
        moved = sorted(self.tasks_dir.glob(f"{name}{_CORRUPT_MARK}*"))
        if not moved:
            return None
        path = self.tasks_dir / name
        from lamplighter.store._scan_records import BrokenTask

        return BrokenTask(
            task_id=TaskId.of(task_id).value,
            path=path,
            reason=self._moved_reasons.get(
                moved[-1],
                f"task file {path} was unreadable and was moved aside to {moved[-1]}; inspect "
                "or delete the moved file",
            ),
            moved_to=moved[-1],
        )

    def load_all(self) -> StoreScan:
        """Every task document; unreadable files are moved aside and reported."""
        from lamplighter.store._scan_records import BrokenTask, StoreScan

        documents: dict[TaskId, dict[str, Any]] = {}
        broken: list[BrokenTask] = []
        ids, _ = self._scan_names()
        for tid in ids:
            try:
                document = self.load(tid)
            except CorruptTaskFile as exc:
                broken.append(
                    BrokenTask(
                        task_id=tid.value, path=exc.path, reason=str(exc), moved_to=exc.moved_to
                    )
                )
                continue
            except StoredDataError as exc:
                broken.append(
                    BrokenTask(task_id=tid.value, path=self.task_path(tid), reason=str(exc))
                )
                continue
            if document is not None:
                documents[tid] = document
        reported = {b.moved_to for b in broken}
        for name in self._scan_names()[1]:
            path = self.tasks_dir / name
            if path in reported:
                continue
            original = name.split(_CORRUPT_MARK, 1)[0]
            broken.append(
                BrokenTask(
                    task_id=original[: -len(".json")],
                    path=path.with_name(original),
                    reason=self._moved_reasons.get(
                        path,
                        f"task file {path.with_name(original)} was unreadable and was moved "
                        f"aside to {path}; inspect or delete the moved file",
                    ),
                    moved_to=path,
                )
            )
        return StoreScan(documents=documents, broken=broken)

    # ------------------------------------------------------------------ locks

    def run_lock(self, task_id: TaskId) -> RunLock:
        """A (not yet acquired) run lock for ``task_id``."""
        self._ensure_dirs()
        return RunLock(self.locks_dir / f"{TaskId.of(task_id).value}.run")

    def is_running(self, task_id: TaskId) -> bool:
        """Whether any process is running ``task_id`` now (never waits)."""
        return _marker_alive(self.locks_dir / f"{TaskId.of(task_id).value}.run")

    # ------------------------------------------------------------------ history

    def append_history(self, task_id: TaskId, record: dict[str, Any]) -> None:
        """Add one firing to the task's history (bounded to :data:`HISTORY_LIMIT`)."""
        task_id = TaskId.of(task_id)
        self._ensure_dirs()
        path = self.history_path(task_id)
        import json  # (not on the way to a run's run(): see lamplighter._jsonlite)

        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > _HISTORY_COMPACT_BYTES:
            with self._write_lock(task_id):
                lines = self._history_lines(path)
                if len(lines) > HISTORY_LIMIT:
                    _write_atomic(path, b"".join(lines[-HISTORY_LIMIT:]))

    @staticmethod
    def _history_lines(path: Path) -> list[bytes]:
        try:
            return read_regular(path).splitlines(keepends=True)
        except FileNotFoundError:
            return []
        except OSError as exc:  # a directory in its place, no permission, an I/O error
            logger.warning("lamplighter: cannot read the history %s: %s", path, exc)
            return []

    def history(self, task_id: TaskId) -> list[dict[str, Any]]:
        """The task's most recent firings, oldest first; unreadable lines are skipped."""
        records = []
        for line in self._history_lines(self.history_path(task_id))[-HISTORY_LIMIT:]:
            try:
                record = _jsonlite.loads(line)
            except (ValueError, RecursionError):
                continue  # a line cut short by a killed writer, or garbage
            if isinstance(record, dict):
                records.append(record)
        return records

    def history_problems(self, task_id: TaskId) -> list[str]:
        """Each line of the task's history that :meth:`history` skips, with its path, line
        number and reason; a file read before is read again only when it changed."""
        path = self.history_path(task_id)
        try:
            os.close(open_regular(path))
            stat = os.stat(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [f"{path} cannot be read ({exc.strerror or exc})"]
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._history_checks.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        problems = []
        for number, line in enumerate(self._history_lines(path), 1):
            reason = history_line_problem(line)
            if reason is not None:
                problems.append(f"{path} line {number}: {reason}")
        if len(self._history_checks) >= _DOCUMENT_CACHE_SIZE:
            self._history_checks.clear()
        self._history_checks[path] = (key, problems)
        return problems

    # ------------------------------------------------------------------ housekeeping

    def sweep(self) -> dict[str, int]:
        """Remove what dead processes left behind: temporary files and stale run markers.

        Returns how many of each were removed.
        """
        self._ensure_dirs()
        removed_tmp = 0
        for directory in (self.tasks_dir, self.history_dir):
            for path in directory.iterdir():
                if not (path.name.startswith(".") and path.name.endswith(_TMP_SUFFIX)):
                    continue
                try:
                    pid = int(path.name.split(".")[-3])
                except (IndexError, ValueError):
                    pid = -1
                if pid != os.getpid() and _process_start_time(pid) is not None:
                    continue  # its writer is still alive
                path.unlink(missing_ok=True)
                removed_tmp += 1
        stale = 0
        for path in self.locks_dir.glob("*.run"):
            try:
                if path.stat().st_size > 1 and not _marker_alive(path):
                    lock = RunLock(path)
                    if lock.try_acquire():  # nobody holds it: clear the dead holder's marker
                        lock.release()
                        stale += 1
            except OSError as exc:  # a directory in its place: that task's run reports it
                logger.warning("lamplighter: cannot check the run lock %s: %s", path, exc)
        return {"temporary_files": removed_tmp, "stale_run_markers": stale}


# --------------------------------------------------------------------------------------------
# the in-memory store of a backend whose schedule dies with the process
# --------------------------------------------------------------------------------------------


class _MemoryRunLock(RunLock):
    """A run lock within one process (the in-process backend runs every task here)."""

    def __init__(self, store: MemoryTaskStore, task_id: TaskId) -> None:
        super().__init__(store.locks_dir)  # no file: the path is only for messages
        self._store = store
        self._key = task_id.value
        self._mine = False

    @property
    def held(self) -> bool:
        return self._mine

    def try_acquire(self) -> bool:
        if self._mine:
            raise RuntimeError(f"the run lock of {self._key!r} is already held")
        if not self._store.acquire(self._key):
            return False
        self._mine = True
        return True

    def release(self) -> None:
        if not self._mine:
            return
        self._mine = False
        self._store.release(self._key)


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return float(value.timestamp())


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat()


# The record of one task in a MemoryTaskStore: one tuple of plain values, read by index.
# Its first four fields are the backend's (an in-process backend keeps the record itself in
# its heap of due times: ``(due, seq, key, False)`` orders it there, and ``seq`` is unique,
# so a comparison never reaches the fields after it); the rest are the task's state.
# A change makes a new record in the store's table (see MemoryTaskStore). A task that has
# neither run nor been changed since it was scheduled has the short form, the fields up to
# SCHEDULED_AT (run count 0, no last run, result or retry): most scheduled tasks.
#: The next due time the backend keeps for the task (POSIX seconds), or None.
DUE = 0
#: This schedule's number, unique and growing: a new one each time the task is installed.
SEQ = 1
#: The task id's string.
KEY = 2
#: Always False (a retry entry of a backend's heap has True there).
RETRY = 3
#: The :class:`~lamplighter.model.TaskRequest`, or the stored mapping it was saved as; None
#: in a record made by scheduling or by a recorded run, whose request is in the store's
#: ``moved_requests`` (see :meth:`MemoryTaskStore.request_of`): a record of plain values
#: only, which the garbage collector stops tracking.
REQUEST = 4
#: Whether the schedule is active (``status`` ``"scheduled"``).
SCHEDULED = 5
#: The attempt the next run will be.
ATTEMPT = 6
#: State keys the record has no field for and the ``backend`` mapping (the ``APPEND``
#: queue among them), or None while there are none.
EXTRA = 7
#: When it was scheduled (POSIX seconds), or None; the last field of the short form.
SCHEDULED_AT = 8
#: How many runs were recorded.
RUN_COUNT = 9
#: When the last run started (POSIX seconds), or None.
LAST_RUN = 10
#: The last result as ``(kind, detail)`` (see :func:`compact_result`), or None.
LAST_RESULT = 11
#: When the pending retry is due (POSIX seconds), or None.
RETRY_AT = 12

#: A task's record in a :class:`MemoryTaskStore` (see :data:`DUE` … :data:`RETRY_AT`).
Record = tuple[Any, ...]

_SUCCESS = ("success", None)
_NEVER_RUN = (0, None, None, None)  # RUN_COUNT … RETRY_AT of a record in its short form


def new_record(
    key: str, request: Any, scheduled_at: float | None, seq: int, due: float | None = None
) -> Record:
    """The record of a task just scheduled (active, attempt 1, never run), in its short
    form."""
    return (due, seq, key, False, request, True, 1, None, scheduled_at)


def full_record(record: Record) -> Record:
    """``record`` with every field (a record in its short form is given the rest)."""
    return record if len(record) > RUN_COUNT else record + _NEVER_RUN


def compact_result(data: dict[str, Any]) -> tuple[str, Any]:
    """A stored result mapping (``result_to_dict``) as ``(kind, detail)``."""
    detail = data.get("message", data.get("unsatisfied"))
    return (str(data["type"]), tuple(detail) if isinstance(detail, list) else detail)


def expand_result(kind: str, detail: Any) -> dict[str, Any]:
    """The stored result mapping of ``(kind, detail)`` (see :func:`compact_result`)."""
    if detail is None:
        return {"type": kind}
    if isinstance(detail, tuple):
        return {"type": kind, "unsatisfied": list(detail)}
    return {"type": kind, "message": detail}


def _task_id(record: Record) -> TaskId:
    request = record[REQUEST]
    if request is None or isinstance(request, Mapping):
        return TaskId(record[KEY])
    return request.task_id  # type: ignore[no-any-return]


def _records(kept: tuple[Any, ...]) -> list[Any]:
    """The history records of a task's entry in ``MemoryTaskStore._histories``."""
    return list(kept[1:]) if kept[0] is None else [kept]


def _kept(kept: tuple[Any, ...], record: Any) -> tuple[Any, ...]:
    """A task's entry in ``MemoryTaskStore._histories`` once ``record`` is added to
    ``kept``: None, then at most HISTORY_LIMIT records."""
    if kept[0] is not None:  # its one record, kept as it is
        return (None, kept, record)
    return (None, *kept[max(1, len(kept) + 1 - HISTORY_LIMIT) :], record)


_STATE_KEYS = frozenset(
    {"status", "scheduled_at", "attempt", "run_count", "last_run", "last_result", "retry_at"}
)


class MemoryTaskStore(TaskStore):
    """Task state, run locks and history kept in this process only.

    Used with a backend whose schedule dies with the process (the in-process backend):
    writing task files nobody will read after the process ends would only cost time. The
    interface is :class:`TaskStore`'s; nothing is written to disk. Each task is one
    :data:`Record`, a tuple of plain values in :attr:`records`, replaced as a whole when
    it changes (under :attr:`lock`); :meth:`load` builds the document form from it when
    asked, and :meth:`entry` gives a backend's run path the record itself. The backend
    may keep the same tuple as its entry of the task in a heap of due times (its first
    fields are the backend's). History records are kept as the tuples the runner gives.

    Args:
        root: the application's data directory (only named in messages).
        encode: makes the stored form of a request, for documents read through
            :meth:`load` (their ``"request"`` is a :class:`StoredRequest`).
    """

    keeps_objects = True

    def __init__(self, root: Path, encode: Callable[[Any], dict[str, Any]] | None = None) -> None:
        super().__init__(root)
        self._encode = encode
        #: Every task's record by its id's string (see :data:`Record`).
        self.records: dict[str, Record] = {}
        #: Schedule numbers (:data:`SEQ`), shared with a backend that keeps the records.
        self.sequence = itertools.count(1)
        #: Held while a record changes (the lock :meth:`exclusive` holds).
        self.lock = self._thread_lock
        self._take_lock = self._thread_lock.acquire
        self._give_lock = self._thread_lock.release
        #: The request of each task whose record a recorded run replaced (that record
        #: holds None at :data:`REQUEST`), by the id's string.
        self.moved_requests: dict[str, Any] = {}
        # Each task's history records, by the id's string: a task with one record of the
        # runner's (a tuple that begins with the id's string) has that record itself (most
        # tasks run once: nothing but the record is made), any other a tuple of None and
        # its records, the oldest first (see _kept).
        self._histories: dict[str, tuple[Any, ...]] = {}
        #: The run locks held: the task id's string → the holder's token. Taken and given
        #: back in one dictionary step each (atomic under the interpreter lock): no lock.
        #: A run's path may take one as :meth:`claim` does, without the call.
        self.run_locks: dict[str, object] = {}
        self._running = self.run_locks

    # ------------------------------------------------------------------ plain values

    def entry(self, key: str) -> Record | None:
        """The record of the task whose id is ``key``."""
        return self.records.get(key)

    def claim(self, key: str, token: object) -> Record | None:
        """Take the run lock of the task ``key`` for ``token`` (an object of the caller's
        that no other holder uses) and return the task's record, as :meth:`entry` then
        :meth:`acquire` would, in one step. None, having taken nothing, when the task has
        no record or a run holds its lock."""
        running = self._running
        if running.setdefault(key, token) is not token:
            return None
        # Read once the lock is held: a run finishing meanwhile gives the lock back only
        # after its outcome is recorded (see succeeded), so this is the record after it.
        record = self.records.get(key)
        if record is None:
            del running[key]
        return record

    def request_of(self, record: Record) -> Any:
        """The request of ``record``'s task (see :data:`REQUEST`)."""
        request = record[REQUEST]
        return self.moved_requests[record[KEY]] if request is None else request

    def schedule_new(self, key: str, request: Any, scheduled_at: float | None) -> Record:
        """Keep a new record for the task ``key`` (replacing any earlier one), scheduled at
        ``scheduled_at``, and return it; called holding :attr:`lock`. The request is kept
        apart (see :data:`REQUEST`), as a recorded run keeps it."""
        self.moved_requests[key] = request
        record = self.records[key] = new_record(key, None, scheduled_at, next(self.sequence))
        return record

    def put(self, record: Record) -> None:
        """Keep ``record`` as its task's record, replacing any earlier one."""
        self.records[record[KEY]] = record

    def succeeded(
        self, key: str, seq: int, started: float, finished: bool, history: tuple[Any, ...]
    ) -> bool:
        """Record a successful run of the schedule ``seq`` of the task ``key``, started at
        ``started``: attempt 1 next, one more run, no retry pending; ``finished``: the
        schedule is over (a one-shot). Keeps ``history`` (the run's history record, a
        tuple that begins with ``key``) and gives back the task's run lock either way (the
        run is over). Returns False, having changed no state, when that
        schedule is no longer the task's (cancelled or scheduled anew meanwhile)."""
        # Written for speed, as every run that goes well comes here: the fields by their
        # index (DUE 0, SEQ 1, REQUEST 4, SCHEDULED 5, EXTRA 7, SCHEDULED_AT 8, RUN_COUNT
        # 9), and the lock taken by a call rather than a ``with``, which costs twice as much.
        records = self.records
        self._take_lock()
        try:
            current = records.get(key)
            if current is not None and current[1] == seq:
                live = True
                request = current[4]
                if request is not None:
                    # Kept apart: a record that held it would stay tracked by the garbage
                    # collector, and a burst's records would be promoted until a full
                    # collection walks them all.
                    self.moved_requests[key] = request
                records[key] = (
                    current[0],
                    seq,
                    key,
                    False,
                    None,
                    current[5] and not finished,
                    1,
                    current[7],
                    current[8],
                    current[9] + 1 if len(current) > 9 else 1,
                    started,
                    _SUCCESS,
                    None,
                )
            else:
                live = False
            histories = self._histories
            kept = histories.get(key)
            # The runner's record begins with the id's string: alone, it is kept as it is.
            histories[key] = history if kept is None else _kept(kept, history)
            self._running.pop(key, None)  # after the outcome: the next run sees it
        finally:
            self._give_lock()
        return live

    def acquire(self, key: str) -> bool:
        """Take the run lock of the task ``key``; False if a run holds it."""
        token = object()
        return self._running.setdefault(key, token) is token

    def release(self, key: str) -> None:
        """Give back the run lock of the task ``key``."""
        self._running.pop(key, None)

    def keep_history(self, key: str, record: tuple[Any, ...]) -> None:
        """:meth:`append_history` for the task ``key``, by a caller holding :attr:`lock`."""
        kept = self._histories.get(key)
        if kept is not None:
            self._histories[key] = _kept(kept, record)
        elif type(record) is tuple and record and type(record[0]) is str:
            self._histories[key] = record
        else:
            self._histories[key] = (None, record)

    def held_lock(self, task_id: TaskId) -> RunLock:
        """The run lock of ``task_id`` as held by the caller, who took it with
        :meth:`acquire`; releasing it gives it back."""
        lock = _MemoryRunLock(self, task_id)
        lock._mine = True
        return lock

    def document_of(self, record: Record) -> dict[str, Any]:
        """The document form of ``record`` (what :meth:`load` gives)."""
        return self._document(record)

    # ------------------------------------------------------------------ the document form

    def _document(self, record: Record) -> dict[str, Any]:
        record = full_record(record)
        request = self.request_of(record)
        if not isinstance(request, Mapping):
            encode = self._encode
            if encode is None:
                from lamplighter._request_codec import encode_request as plain

                def encode(value: Any) -> dict[str, Any]:
                    return plain(value) or {}

            request = StoredRequest(request, encode)
        extra = dict(record[EXTRA] or {})
        backend = extra.pop("backend", None)
        state: dict[str, Any] = {"status": "scheduled" if record[SCHEDULED] else "inactive"}
        if record[SCHEDULED_AT] is not None:
            state["scheduled_at"] = _iso(record[SCHEDULED_AT])
        if record[ATTEMPT] != 1:
            state["attempt"] = record[ATTEMPT]
        if record[RUN_COUNT]:
            state["run_count"] = record[RUN_COUNT]
        if record[LAST_RUN] is not None:
            state["last_run"] = _iso(record[LAST_RUN])
        if record[LAST_RESULT] is not None:
            state["last_result"] = expand_result(*record[LAST_RESULT])
        if record[RETRY_AT] is not None:
            state["retry_at"] = _iso(record[RETRY_AT])
        state.update(extra)
        document: dict[str, Any] = {"request": request, "state": state}
        if backend:
            document["backend"] = backend
        return document

    def _absorb(self, key: str, document: Mapping[str, Any]) -> Record:
        """The record of ``document``; the backend's fields are the current record's (a
        document changes the task's state, not its schedule)."""
        request = document["request"]
        if isinstance(request, StoredRequest):
            request = request.request
        state = dict(document.get("state") or {})
        current = self.records.get(key)
        last_result = state.pop("last_result", None)
        scheduled = state.pop("status", "scheduled") == "scheduled"
        attempt = int(state.pop("attempt", 1))
        scheduled_at = _timestamp(state.pop("scheduled_at", None))
        rest = (
            int(state.pop("run_count", 0)),
            _timestamp(state.pop("last_run", None)),
            None if last_result is None else compact_result(last_result),
            _timestamp(state.pop("retry_at", None)),
        )
        if document.get("backend"):
            state["backend"] = dict(document["backend"])
        record: Record = (
            None if current is None else current[DUE],
            next(self.sequence) if current is None else current[SEQ],
            key,
            False,
            request,
            scheduled,
            attempt,
            state or None,
            scheduled_at,
        )
        return record if rest == _NEVER_RUN else record + rest

    # ------------------------------------------------------------------ TaskStore

    def load(self, task_id: TaskId) -> dict[str, Any] | None:
        record = self.records.get(TaskId.of(task_id).value)
        return None if record is None else self._document(record)

    def moved_aside(self, task_id: TaskId) -> BrokenTask | None:
        return None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._thread_lock:  # runs record their outcome under the same lock
            yield

    def save(self, task_id: TaskId, document: dict[str, Any]) -> None:
        key = TaskId.of(task_id).value
        with self._thread_lock:
            self.records[key] = self._absorb(key, document)

    def save_many(self, items: Sequence[tuple[TaskId, dict[str, Any]]]) -> None:
        for task_id, document in items:
            self.save(task_id, document)

    def update(
        self,
        task_id: TaskId,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        key = TaskId.of(task_id).value
        with self._thread_lock:
            current = self.records.get(key)
            new = change(None if current is None else self._document(current))
            if new is None:
                return None
            self.records[key] = self._absorb(key, new)
            return new

    def delete(self, task_id: TaskId) -> bool:
        key = TaskId.of(task_id).value
        with self._thread_lock:
            self._histories.pop(key, None)
            self.moved_requests.pop(key, None)
            return self.records.pop(key, None) is not None

    def task_ids(self) -> list[TaskId]:
        return sorted((_task_id(record) for record in list(self.records.values())), key=str)

    def load_all(self) -> StoreScan:
        from lamplighter.store._scan_records import StoreScan

        return StoreScan(
            documents={
                _task_id(record): self._document(record) for record in list(self.records.values())
            },
            broken=[],
        )

    def run_lock(self, task_id: TaskId) -> RunLock:
        return _MemoryRunLock(self, TaskId.of(task_id))

    def is_running(self, task_id: TaskId) -> bool:
        return TaskId.of(task_id).value in self._running

    def drop_locks(self, task_id: TaskId) -> None:
        pass  # no lock files

    def append_history(self, task_id: TaskId, record: Any) -> None:
        # A tuple, replaced at each append (at most HISTORY_LIMIT records are copied): a
        # tuple of plain values is not tracked by the garbage collector, where a deque is.
        with self._thread_lock:
            self.keep_history(TaskId.of(task_id).value, record)

    def history(self, task_id: TaskId) -> list[Any]:
        kept = self._histories.get(TaskId.of(task_id).value)
        return [] if kept is None else _records(kept)

    def history_problems(self, task_id: TaskId) -> list[str]:
        return []  # records kept as objects cannot be malformed

    def sweep(self) -> dict[str, int]:
        return {"temporary_files": 0, "stale_run_markers": 0}


# The records of a scan, created on first use (a run scans no task files).
_SCAN_RECORDS = frozenset({"BrokenTask", "StoreScan"})


def __getattr__(name: str) -> Any:
    if name not in _SCAN_RECORDS:
        raise AttributeError(f"module 'lamplighter.store' has no attribute {name!r}")
    from lamplighter.store import _scan_records

    value = getattr(_scan_records, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SCAN_RECORDS)
