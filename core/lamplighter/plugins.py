"""The plugin manager: finds plugins, isolates broken ones, collects their records.

Plugins come from three places, in this order:

1. core's built-in plugins (the device-state constraint checker);
2. either the modules or objects passed as ``plugins=[...]`` (an explicit set: no entry
   points are read, which frozen applications need), or else every entry point of the
   ``lamplighter`` group of the installed distributions;
3. nothing else: there is no implicit discovery by module name.

A plugin is disabled by name with ``disable=[...]`` or the environment variable
``LAMPLIGHTER_DISABLE_PLUGINS`` (comma-separated). A plugin's name is its entry-point name,
``"device"`` for the built-in checker, or the ``__name__`` of an explicitly passed module
(the ``name`` attribute, else the class name, of another object).

A plugin that fails to import, whose hooks do not match the specifications, or whose
registration hook raises or returns something other than the documented records is left
out and reported in :attr:`PluginManager.failures` (with its distribution); the others keep
working. Two plugins claiming one backend name, checker name, constrained field or trigger
kind is a :class:`PluginConflictError` naming both distributions, because picking one
silently would schedule work through a backend nobody chose.

Loading happens once, lazily, on first use; ``import lamplighter.plugins`` reads no entry
points.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from lamplighter import hookspecs
from lamplighter._log import lazy_logger
from lamplighter.hookspecs import BackendInfo, CheckerInfo, TriggerTypeInfo
from lamplighter.model import BUILTIN_TRIGGER_KINDS, CONSTRAINT_NAMES, Trigger

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LoadedPlugin",
    "PluginConflictError",
    "PluginFailure",
    "PluginManager",
]

logger = lazy_logger(__name__)

ENTRY_POINT_GROUP = "lamplighter"
DISABLE_ENV = "LAMPLIGHTER_DISABLE_PLUGINS"
_NAME = re.compile(r"[a-z][a-z0-9_\-]*")
_KIND = re.compile(r"[a-z][a-z0-9_]*")


class PluginConflictError(ValueError):
    """Two plugins claim the same backend, checker, constraint or trigger kind."""


@attrs.frozen
class PluginFailure:
    """A plugin that was left out, and why."""

    name: str
    distribution: str | None
    error: str

    def __str__(self) -> str:
        where = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.name!r}{where}: {self.error}"


@attrs.frozen
class LoadedPlugin:
    """A plugin that is registered."""

    name: str
    distribution: str | None
    module: str


class _Claim:
    """Which plugin (of which distribution) claims a name. A plain class: the plugin
    manager is built in every process the OS starts, and an attrs class costs its creation."""

    __slots__ = ("distribution", "plugin")

    def __init__(self, plugin: str, distribution: str | None) -> None:
        self.plugin = plugin
        self.distribution = distribution

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Claim):
            return NotImplemented
        return (self.plugin, self.distribution) == (other.plugin, other.distribution)

    def __hash__(self) -> int:
        return hash((self.plugin, self.distribution))

    def __str__(self) -> str:
        return f"{self.distribution or 'no distribution'} (plugin {self.plugin!r})"


def _disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginManager:
    """Loads and validates the plugin set of one application.

    Args:
        plugins: an explicit list of plugin modules or objects; when given, entry points
            are not read.
        disable: names of plugins to leave out (added to ``LAMPLIGHTER_DISABLE_PLUGINS``).
        builtins: register core's built-in plugins (the device-state checker).
    """

    def __init__(
        self,
        plugins: Sequence[object] | None = None,
        *,
        disable: Iterable[str] = (),
        builtins: bool = True,
    ) -> None:
        self._explicit = None if plugins is None else list(plugins)
        self._disabled = set(disable) | _disabled_from_env()
        self._builtins = builtins
        self._lock = threading.Lock()
        self._loaded = False
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, LoadedPlugin] = {}
        self._failures: list[PluginFailure] = []
        self._backends: dict[str, BackendInfo] = {}
        self._checkers: dict[str, CheckerInfo] = {}
        self._checker_by_constraint: dict[str, CheckerInfo] = {}
        self._trigger_types: dict[str, type[Trigger]] = {}
        self._converter: cattrs.Converter | None = None
        self._error: PluginConflictError | None = None

    # ---------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Load every plugin once; later calls do nothing. Thread-safe."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        self._load()
                    except PluginConflictError as exc:
                        self._error = exc
                    self._loaded = True
        if self._error is not None:
            raise self._error

    def _load(self) -> None:
        if self._builtins:
            from lamplighter import _device_plugin

            self._register(_device_plugin, "device", "lamplighter")
        if self._explicit is not None:
            for plugin in self._explicit:
                self._register(plugin, _plugin_name(plugin), None)
        else:
            self._load_entry_points()
        self._pm.check_pending()
        self._collect()

    def _load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for name, value, dist, load in _discover():
            if (name, value) in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add((name, value))
            if name in self._disabled:
                logger.debug("plugin %r disabled", name)
                continue
            if name in self._plugins:
                other = self._plugins[name].distribution
                self._fail(name, dist, f"the plugin name is already used by {other}")
                continue
            try:
                module = load()
            except Exception as exc:
                self._fail(name, dist, f"failed to import {value}: {_describe(exc)}")
                continue
            self._register(module, name, dist)

    def _register(self, plugin: object, name: str, distribution: str | None) -> None:
        if name in self._disabled:
            logger.debug("plugin %r disabled", name)
            return
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # PluginValidationError, or a name registered twice
            self._fail(name, distribution, _describe(exc))
            return
        unknown = [
            impl.name for impl in (self._pm.get_hookcallers(plugin) or []) if impl.spec is None
        ]
        if unknown:
            self._pm.unregister(plugin)
            self._fail(
                name,
                distribution,
                f"implements unknown hooks {sorted(unknown)} (misspelled?); known hooks: "
                + ", ".join(sorted(_hook_names())),
            )
            return
        module = getattr(plugin, "__name__", type(plugin).__module__)
        self._plugins[name] = LoadedPlugin(name=name, distribution=distribution, module=module)

    def _fail(self, name: str, distribution: str | None, error: str) -> None:
        failure = PluginFailure(name=name, distribution=distribution, error=error)
        logger.warning("lamplighter %s", failure)
        self._failures.append(failure)

    # ---------------------------------------------------------------------------- records

    def _results(
        self, hook_name: str, record_type: type, **kwargs: Any
    ) -> list[tuple[_Claim, Any]]:
        """Call ``hook_name`` plugin by plugin, so each record is attributed to its plugin
        and one plugin's error leaves the others' records intact."""
        caller = getattr(self._pm.hook, hook_name)
        out: list[tuple[_Claim, Any]] = []
        for impl in caller.get_hookimpls():
            plugin = self._plugins.get(impl.plugin_name)
            claim = _Claim(impl.plugin_name, plugin.distribution if plugin else None)
            try:
                records = impl.function(**kwargs)
                records = [] if records is None else list(records)
                for record in records:
                    if not isinstance(record, record_type):
                        raise TypeError(
                            f"{hook_name} must return {record_type.__name__} records, got "
                            f"{type(record).__name__}"
                        )
            except Exception as exc:
                self._fail(impl.plugin_name, claim.distribution, f"{hook_name}: {_describe(exc)}")
                continue
            out.extend((claim, record) for record in records)
        return out

    def _collect(self) -> None:
        claims: dict[tuple[str, str], _Claim] = {}

        def claim(what: str, key: str, owner: _Claim) -> None:
            previous = claims.get((what, key))
            if previous is not None and previous != owner:
                raise PluginConflictError(
                    f"{what} {key!r} is claimed by both {previous} and {owner}; uninstall one "
                    f"or disable one with {DISABLE_ENV}"
                )
            claims[(what, key)] = owner

        for kind in BUILTIN_TRIGGER_KINDS:
            claims[("trigger kind", kind)] = _Claim("lamplighter", "lamplighter")

        for owner, backend in self._results("lamplighter_backends", BackendInfo):
            if not _NAME.fullmatch(backend.name):
                self._fail(
                    owner.plugin, owner.distribution, f"invalid backend name {backend.name!r}"
                )
                continue
            claim("backend", backend.name, owner)
            self._backends[backend.name] = backend

        for owner, checker in self._results("lamplighter_constraint_checkers", CheckerInfo):
            unknown = sorted(checker.constraints - set(CONSTRAINT_NAMES))
            if unknown or not _NAME.fullmatch(checker.name):
                self._fail(
                    owner.plugin,
                    owner.distribution,
                    f"checker {checker.name!r} is invalid: unknown constraints {unknown}; "
                    f"known: {', '.join(CONSTRAINT_NAMES)}",
                )
                continue
            claim("constraint checker", checker.name, owner)
            for constraint in checker.constraints:
                claim("constraint", constraint, owner)
                self._checker_by_constraint[constraint] = checker
            self._checkers[checker.name] = checker

        for owner, info in self._results("lamplighter_trigger_types", TriggerTypeInfo):
            cls = info.cls
            trigger_kind = getattr(cls, "kind", None)
            if not (
                isinstance(cls, type)
                and issubclass(cls, Trigger)
                and attrs.has(cls)
                and isinstance(trigger_kind, str)
                and _KIND.fullmatch(trigger_kind)
            ):
                self._fail(
                    owner.plugin,
                    owner.distribution,
                    f"trigger type {cls!r} must be an attrs subclass of lamplighter.Trigger "
                    "with a lowercase 'kind' class attribute",
                )
                continue
            claim("trigger kind", trigger_kind, owner)
            self._trigger_types[trigger_kind] = info.cls

    # ---------------------------------------------------------------------------- queries

    @property
    def plugins(self) -> Mapping[str, LoadedPlugin]:
        """The registered plugins by name."""
        self.load()
        return dict(self._plugins)

    @property
    def failures(self) -> Sequence[PluginFailure]:
        """The plugins that were left out, and why."""
        self.load()
        return tuple(self._failures)

    @property
    def backends(self) -> Mapping[str, BackendInfo]:
        """Every backend the loaded plugins provide, by name."""
        self.load()
        return dict(self._backends)

    @property
    def checkers(self) -> Mapping[str, CheckerInfo]:
        """Every constraint checker, by name."""
        self.load()
        return dict(self._checkers)

    def checker_for(self, constraint: str) -> CheckerInfo | None:
        """The checker that evaluates ``constraint`` (a ``Constraints`` field name)."""
        self.load()
        return self._checker_by_constraint.get(constraint)

    @property
    def trigger_types(self) -> Mapping[str, type[Trigger]]:
        """The trigger types plugins add, by kind (the built-in ones are not listed)."""
        self.load()
        return dict(self._trigger_types)

    def converter(self) -> cattrs.Converter:
        """The converter for stored documents, knowing every plugin's trigger types."""
        self.load()
        if self._converter is None:
            from lamplighter.serialization import build_converter

            self._converter = build_converter(self._trigger_types.values())
        return self._converter

    def monitors(self, app: object) -> list[Any]:
        """Ask every plugin for its monitors for ``app``."""
        self.load()
        monitors: list[Any] = []
        for impl in self._pm.hook.lamplighter_monitors.get_hookimpls():
            plugin = self._plugins.get(impl.plugin_name)
            try:
                contributed: Iterable[Any] = cast("Iterable[Any]", impl.function(app=app) or ())
                monitors.extend(contributed)
            except Exception as exc:
                dist = plugin.distribution if plugin else None
                self._fail(impl.plugin_name, dist, f"lamplighter_monitors: {_describe(exc)}")
        return monitors

    def report(self) -> dict[str, Any]:
        """A JSON-able summary for ``diagnostics()`` and ``lamplighter plugins``."""
        self.load()
        return {
            "plugins": [attrs.asdict(p) for p in self._plugins.values()],
            "failures": [attrs.asdict(f) for f in self._failures],
            "backends": sorted(self._backends),
            "checkers": {name: sorted(c.constraints) for name, c in self._checkers.items()},
            "trigger_types": sorted(self._trigger_types),
        }


def _discover() -> list[tuple[str, str, str | None, Callable[[], object]]]:
    """(name, value, distribution, load) of every entry point in the ``lamplighter`` group.

    The directories on ``sys.path`` are read directly, because importing
    ``importlib.metadata`` costs more than the rest of an OS-launched run's start-up;
    ``importlib.metadata`` is the fallback where that is not enough.
    """
    from lamplighter._entry_points import NeedsMetadata, scan

    try:
        return [(ep.name, ep.value, ep.distribution, ep.load) for ep in scan(ENTRY_POINT_GROUP)]
    except NeedsMetadata as exc:
        logger.debug("reading entry points through importlib.metadata: %s", exc)
    from importlib.metadata import entry_points

    return [
        (ep.name, ep.value, ep.dist.name if ep.dist is not None else None, ep.load)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or getattr(plugin, "name", None)
    return str(name) if name else type(plugin).__name__


def _hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("lamplighter_")]
