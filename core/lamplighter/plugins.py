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

Loading happens once, lazily, on first use, in steps: the plugins are imported and
registered (by pluggy's rules; see ``_Hooks``) when anything is first asked of the manager
(the monitors, say), and each registration hook is called, its records validated and
collected, when its records are first asked for: ``lamplighter_backends`` for a backend,
``lamplighter_constraint_checkers`` for a checker, ``lamplighter_trigger_types`` for a
trigger type or the converter, all three for the plugins, the failures, the report or
:meth:`PluginManager.load`. Each hook's records claim names of their own kind, so each is
checked for conflicts on its own. A process the OS starts for one run asks for the monitors
alone unless the run needs more (the backend to renew a schedule, a checker for a
constraint), so it calls no registration hook it does not need. ``import
lamplighter.plugins`` reads no entry points.
"""

from __future__ import annotations

import os
import re
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from lamplighter import hookspecs
from lamplighter._log import lazy_logger
from lamplighter.model import BUILTIN_TRIGGER_KINDS, CONSTRAINT_NAMES, Trigger

if TYPE_CHECKING:
    import cattrs

    # Created on first use, like the hook records (public home: this module).
    from lamplighter._plugin_records import LoadedPlugin as LoadedPlugin
    from lamplighter._plugin_records import PluginFailure as PluginFailure
    from lamplighter.hookspecs import BackendInfo, CheckerInfo

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
# Patterns (compiled by re when first used: a run that calls no registration hook uses none).
_NAME = r"[a-z][a-z0-9_\-]*"
_KIND = r"[a-z][a-z0-9_]*"


class PluginConflictError(ValueError):
    """Two plugins claim the same backend, checker, constraint or trigger kind."""


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


# What pluggy accepts as a hook implementation found on a module.
_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)


class _Impl:
    """A hook implementation registered without pluggy: what the manager reads of pluggy's
    ``HookImpl`` (the plugin's name and the function), and what orders it."""

    __slots__ = ("function", "plugin", "plugin_name", "tryfirst", "trylast")

    def __init__(self, plugin: object, plugin_name: str, function: Any, opts: dict[str, Any]):
        self.plugin = plugin
        self.plugin_name = plugin_name
        self.function = function
        self.tryfirst = opts["tryfirst"]
        self.trylast = opts["trylast"]


class _Hooks:
    """The plugins registered with one manager and their hook implementations, by hook.

    pluggy's rules decide what a plugin's hooks are, whether it is valid and in which order
    its hooks come; for the plugins that make up nearly every installation (modules whose
    hooks are plain functions, each implementing a hook of this project with arguments the
    specification has, no wrappers) they are applied here, without importing pluggy, which
    a process the OS starts for one run would otherwise import for this alone. The first
    plugin that is anything else (an object, a wrapper, a ``staticmethod``, a hook pluggy
    would reject, a name already registered …) hands everything to pluggy: the plugins
    registered so far are registered with pluggy again, in their order, which gives them
    the same hooks in the same order, and pluggy registers that plugin and every later one.
    Nothing here calls a hook through pluggy: the manager calls each implementation itself.
    """

    __slots__ = ("_impls", "_plugins", "_pm")

    def __init__(self) -> None:
        self._plugins: list[tuple[object, str]] = []
        self._impls: dict[str, list[_Impl]] = {name: [] for name in _SPEC_ARGS}
        self._pm: Any = None  # pluggy's manager, once a plugin needed it

    def register(self, plugin: object, name: str) -> list[str]:
        """Register ``plugin`` as ``name``; the hooks it implements that no specification
        has (misspelled?), after which it is not registered. Raises what pluggy raises
        for a plugin it rejects."""
        if self._pm is None:
            found = _plain_hooks(plugin, name)
            if found is not None and all(p is not plugin and n != name for p, n in self._plugins):
                for hook_name, impl in found:
                    _add(self._impls[hook_name], impl)
                self._plugins.append((plugin, name))
                return []
            self._pm = _pluggy_manager(self._plugins)
        pm = self._pm
        pm.register(plugin, name=name)
        unknown = [impl.name for impl in (pm.get_hookcallers(plugin) or []) if impl.spec is None]
        if unknown:
            pm.unregister(plugin)
        return unknown

    def check_pending(self) -> None:
        """pluggy's check that every hook without a specification is optional."""
        if self._pm is not None:
            self._pm.check_pending()

    def impls(self, hook_name: str) -> list[Any]:
        """The implementations of ``hook_name``, in pluggy's order (``get_hookimpls``)."""
        if self._pm is not None:
            return list(getattr(self._pm.hook, hook_name).get_hookimpls())
        return list(self._impls[hook_name])


def _add(impls: list[_Impl], impl: _Impl) -> None:
    """Insert ``impl`` where pluggy's ``HookCaller._add_hookimpl`` puts an implementation
    that is no wrapper (and there are none here): ``trylast`` first, ``tryfirst`` last, the
    others after the last that is not ``tryfirst``."""
    if impl.trylast:
        impls.insert(0, impl)
    elif impl.tryfirst:
        impls.append(impl)
    else:
        i = len(impls) - 1
        while i >= 0 and impls[i].tryfirst:
            i -= 1
        impls.insert(i + 1, impl)


def _plain_hooks(plugin: object, plugin_name: str) -> list[tuple[str, _Impl]] | None:
    """The hooks of ``plugin`` as pluggy's registration finds them (the hook's name and the
    implementation, in pluggy's order), if ``plugin`` is a module whose hooks pluggy would
    accept as plain functions; else None (pluggy must look). Marks' options are completed
    in place, as pluggy does."""
    if type(plugin) is not types.ModuleType:
        return None
    namespace = plugin.__dict__
    found: list[tuple[str, _Impl]] = []
    for attr_name in dir(plugin):
        value = namespace.get(attr_name)
        if not isinstance(value, _HOOKABLE):
            continue  # no hook for pluggy either (see lamplighter._pluggy)
        if type(value) is not types.FunctionType or attr_name in _MODULE_DESCRIPTORS:
            return None
        opts = getattr(value, _IMPL_MARK, None)
        if opts is None:
            if hasattr(value, "__func__"):
                return None  # pluggy would look for the mark there as well
            continue
        if not isinstance(opts, dict):
            continue
        for option in ("tryfirst", "trylast", "wrapper", "hookwrapper", "optionalhook"):
            opts.setdefault(option, False)
        opts.setdefault("specname", None)
        hook_name = opts["specname"] or attr_name
        spec_args = _SPEC_ARGS.get(hook_name)
        if spec_args is None or opts["wrapper"] or opts["hookwrapper"]:
            return None
        # pluggy's varnames(): positional parameters without defaults; a method's first
        # is left out. Only a function that is plainly none is taken here.
        qualname = value.__qualname__
        if hasattr(value, "__wrapped__") or "." in qualname.rsplit("<locals>.", 1)[-1]:
            return None
        code = value.__code__
        args = code.co_varnames[: code.co_argcount]
        if value.__defaults__:
            args = args[: -len(value.__defaults__)]
        if not set(args) <= spec_args:
            return None  # pluggy rejects it, with its message
        found.append((hook_name, _Impl(plugin, plugin_name, value, opts)))
    return found


def _pluggy_manager(registered: list[tuple[object, str]]) -> Any:
    """pluggy's manager with the hook specifications and ``registered`` registered again."""
    from lamplighter._pluggy import Registry

    pm = Registry(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(_Specs)
    for plugin, name in registered:
        pm.register(plugin, name=name)
    return pm


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
        self._registered = False  # every plugin imported and registered
        self._collected: set[str] = set()  # the registration hooks whose records are in
        self._errors: dict[str, PluginConflictError] = {}  # by registration hook
        self._hooks = _Hooks()
        # name -> (distribution, module): LoadedPlugin records are made when asked for.
        self._plugins: dict[str, tuple[str | None, str]] = {}
        self._failures: list[PluginFailure] = []
        self._backends: dict[str, BackendInfo] = {}
        self._checkers: dict[str, CheckerInfo] = {}
        self._checker_by_constraint: dict[str, CheckerInfo] = {}
        self._trigger_types: dict[str, type[Trigger]] = {}
        self._converter: cattrs.Converter | None = None
        # [listener, how many failures it was given] (see report_failures)
        self._listeners: list[list[Any]] = []
        self._telling = threading.RLock()

    # ---------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Load every plugin once (import, register, collect the records of every
        registration hook); later calls do nothing. Thread-safe.

        Raises:
            PluginConflictError: two plugins claim one backend, checker, constraint or
                trigger kind (again on every later call).
        """
        for hook_name in _REGISTRATION_HOOKS:
            self._collect(hook_name, raising=False)
        for hook_name in _REGISTRATION_HOOKS:
            error = self._errors.get(hook_name)
            if error is not None:
                raise error

    def _collect(self, hook_name: str, *, raising: bool = True) -> None:
        """Register the plugins and collect the records of one registration hook, once:
        each hook's records claim names of their own kind, so each is validated alone."""
        if hook_name not in self._collected:
            with self._lock:
                self._register_all()
                if hook_name not in self._collected:
                    try:
                        _COLLECTORS[hook_name](self)
                    except PluginConflictError as exc:
                        self._errors[hook_name] = exc
                    self._collected.add(hook_name)
            self._tell()
        error = self._errors.get(hook_name)
        if raising and error is not None:
            raise error

    def register(self) -> None:
        """Import and register every plugin once, without calling the registration hooks
        (:meth:`load` calls them). Enough for :meth:`monitors`. Thread-safe."""
        if not self._registered:
            with self._lock:
                self._register_all()
            self._tell()

    def _register_all(self) -> None:
        if self._registered:
            return
        if self._builtins:
            from lamplighter import _device_plugin

            self._register(_device_plugin, "device", "lamplighter")
        if self._explicit is not None:
            for plugin in self._explicit:
                self._register(plugin, _plugin_name(plugin), None)
        else:
            self._load_entry_points()
        self._hooks.check_pending()
        self._registered = True

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
                other = self._plugins[name][0]
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
            unknown = self._hooks.register(plugin, name)
        except Exception as exc:  # PluginValidationError, or a name registered twice
            self._fail(name, distribution, _describe(exc))
            return
        if unknown:
            self._fail(
                name,
                distribution,
                f"implements unknown hooks {sorted(unknown)} (misspelled?); known hooks: "
                + ", ".join(sorted(_hook_names())),
            )
            return
        module = getattr(plugin, "__name__", type(plugin).__module__)
        self._plugins[name] = (distribution, module)

    def _fail(self, name: str, distribution: str | None, error: str) -> None:
        from lamplighter._plugin_records import PluginFailure

        failure = PluginFailure(name=name, distribution=distribution, error=error)
        logger.warning("lamplighter %s", failure)
        self._failures.append(failure)

    def _distribution(self, plugin_name: str) -> str | None:
        registered = self._plugins.get(plugin_name)
        return registered[0] if registered else None

    # ---------------------------------------------------------------------------- records

    def _results(self, hook_name: str, record_type: type) -> list[tuple[_Claim, Any]]:
        """Call ``hook_name`` plugin by plugin, so each record is attributed to its plugin
        and one plugin's error leaves the others' records intact."""
        out: list[tuple[_Claim, Any]] = []
        for impl in self._hooks.impls(hook_name):
            claim = _Claim(impl.plugin_name, self._distribution(impl.plugin_name))
            try:
                records = impl.function()
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

    def _claims(self) -> Callable[[str, str, _Claim], None]:
        """A claim check for one registration hook's records: two plugins claiming one
        name is a :class:`PluginConflictError` naming both."""
        claims: dict[tuple[str, str], _Claim] = {}
        for kind in BUILTIN_TRIGGER_KINDS:
            claims[("trigger kind", kind)] = _Claim("lamplighter", "lamplighter")

        def claim(what: str, key: str, owner: _Claim) -> None:
            previous = claims.get((what, key))
            if previous is not None and previous != owner:
                raise PluginConflictError(
                    f"{what} {key!r} is claimed by both {previous} and {owner}; uninstall one "
                    f"or disable one with {DISABLE_ENV}"
                )
            claims[(what, key)] = owner

        return claim

    # The record classes are made on first use: a hook nobody implements needs none.

    def _collect_backends(self) -> None:
        if not self._hooks.impls("lamplighter_backends"):
            return
        claim = self._claims()
        for owner, backend in self._results("lamplighter_backends", hookspecs.BackendInfo):
            if not re.fullmatch(_NAME, backend.name):
                self._fail(
                    owner.plugin, owner.distribution, f"invalid backend name {backend.name!r}"
                )
                continue
            claim("backend", backend.name, owner)
            self._backends[backend.name] = backend

    def _collect_checkers(self) -> None:
        if not self._hooks.impls("lamplighter_constraint_checkers"):
            return
        claim = self._claims()
        checkers = self._results("lamplighter_constraint_checkers", hookspecs.CheckerInfo)
        for owner, checker in checkers:
            unknown = sorted(checker.constraints - set(CONSTRAINT_NAMES))
            if unknown or not re.fullmatch(_NAME, checker.name):
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

    def _collect_trigger_types(self) -> None:
        if not self._hooks.impls("lamplighter_trigger_types"):
            return
        claim = self._claims()
        types = self._results("lamplighter_trigger_types", hookspecs.TriggerTypeInfo)
        for owner, info in types:
            cls = info.cls
            trigger_kind = getattr(cls, "kind", None)
            if not (
                isinstance(cls, type)
                and issubclass(cls, Trigger)
                and attrs.has(cls)
                and isinstance(trigger_kind, str)
                and re.fullmatch(_KIND, trigger_kind)
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
        from lamplighter._plugin_records import LoadedPlugin

        return {
            name: LoadedPlugin(name=name, distribution=distribution, module=module)
            for name, (distribution, module) in self._plugins.items()
        }

    @property
    def failures(self) -> Sequence[PluginFailure]:
        """The plugins that were left out, and why."""
        self.load()
        return tuple(self._failures)

    def report_failures(self, listener: Callable[[PluginFailure], object]) -> None:
        """Call ``listener`` with each failure: at once with those registering the plugins
        (which this does, if it was not done) and the hooks called so far found, later with
        each one a hook called later finds, when the step that called it is over.

        Unlike :attr:`failures`, this calls no registration hook. A process the OS starts
        for one run reports the failures this way: it calls the registration hooks only
        if the run needs their records (a backend, a checker), and their failures are
        reported then. An exception from ``listener`` is logged and not raised.
        """
        with self._telling:
            self._listeners.append([listener, 0])
        self.register()
        self._tell()

    def _tell(self) -> None:
        """Give every listener the failures it was not given yet (outside the loading
        lock, so a listener may use the manager)."""
        with self._telling:  # re-entrant: a listener may load what makes a failure
            for entry in self._listeners:
                while entry[1] < len(self._failures):
                    failure = self._failures[entry[1]]
                    entry[1] += 1
                    try:
                        entry[0](failure)
                    except Exception:
                        logger.exception("lamplighter: reporting %s failed", failure)

    @property
    def backends(self) -> Mapping[str, BackendInfo]:
        """Every backend the loaded plugins provide, by name (calls no other registration
        hook than ``lamplighter_backends``)."""
        self._collect("lamplighter_backends")
        return dict(self._backends)

    @property
    def checkers(self) -> Mapping[str, CheckerInfo]:
        """Every constraint checker, by name."""
        self._collect("lamplighter_constraint_checkers")
        return dict(self._checkers)

    def checker_for(self, constraint: str) -> CheckerInfo | None:
        """The checker that evaluates ``constraint`` (a ``Constraints`` field name)."""
        self._collect("lamplighter_constraint_checkers")
        return self._checker_by_constraint.get(constraint)

    @property
    def trigger_types(self) -> Mapping[str, type[Trigger]]:
        """The trigger types plugins add, by kind (the built-in ones are not listed)."""
        self._collect("lamplighter_trigger_types")
        return dict(self._trigger_types)

    def converter(self) -> cattrs.Converter:
        """The converter for stored documents, knowing every plugin's trigger types."""
        self._collect("lamplighter_trigger_types")
        if self._converter is None:
            from lamplighter.serialization import build_converter

            self._converter = build_converter(self._trigger_types.values())
        return self._converter

    def monitors(self, app: object) -> list[Any]:
        """Ask every plugin for its monitors for ``app``. Registers the plugins first (see
        :meth:`register`); calls no registration hook."""
        self.register()
        monitors: list[Any] = []
        for impl in self._hooks.impls("lamplighter_monitors"):
            try:
                contributed: Iterable[Any] = cast("Iterable[Any]", impl.function(app=app) or ())
                monitors.extend(contributed)
            except Exception as exc:
                dist = self._distribution(impl.plugin_name)
                self._fail(impl.plugin_name, dist, f"lamplighter_monitors: {_describe(exc)}")
        self._tell()
        return monitors

    def report(self) -> dict[str, Any]:
        """A JSON-able summary for ``diagnostics()`` and ``lamplighter plugins``."""
        self.load()
        return {
            "plugins": [
                {"name": name, "distribution": distribution, "module": module}
                for name, (distribution, module) in self._plugins.items()
            ],
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


_REGISTRATION_HOOKS = (
    "lamplighter_backends",
    "lamplighter_constraint_checkers",
    "lamplighter_trigger_types",
)
_COLLECTORS: dict[str, Callable[[PluginManager], None]] = {
    "lamplighter_backends": PluginManager._collect_backends,
    "lamplighter_constraint_checkers": PluginManager._collect_checkers,
    "lamplighter_trigger_types": PluginManager._collect_trigger_types,
}


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or getattr(plugin, "name", None)
    return str(name) if name else type(plugin).__name__


def _hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("lamplighter_")]


# The hook specifications alone, for pluggy, which looks at every name of what it is given
# (the module's records would be created by that look).
_Specs = type("_Specs", (), {name: getattr(hookspecs, name) for name in _hook_names()})
# Each hook's positional parameters (none has defaults), as pluggy reads a specification.
_SPEC_ARGS = {
    name: frozenset(spec.__code__.co_varnames[: spec.__code__.co_argcount])
    for name, spec in vars(_Specs).items()
    if name.startswith("lamplighter_")
}
_IMPL_MARK = hookspecs.PROJECT_NAME + "_impl"
# Names a module's type holds as data descriptors: pluggy's static look-up finds those, not
# the module's own value of the name.
_MODULE_DESCRIPTORS = frozenset(
    name
    for cls in types.ModuleType.__mro__
    for name, value in vars(cls).items()
    if hasattr(type(value), "__get__")
    and (hasattr(type(value), "__set__") or hasattr(type(value), "__delete__"))
)


_RECORDS = frozenset({"LoadedPlugin", "PluginFailure"})


def __getattr__(name: str) -> Any:
    if name not in _RECORDS:
        raise AttributeError(f"module 'lamplighter.plugins' has no attribute {name!r}")
    from lamplighter import _plugin_records

    value = getattr(_plugin_records, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _RECORDS)
