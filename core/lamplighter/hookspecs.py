"""The hooks a Lamplighter plugin implements, and the records they return.

A plugin is a module (or any object) with functions marked ``@lamplighter.hookimpl`` whose
names are the hooks below. A distribution makes its plugin discoverable by naming the module
in the ``lamplighter`` entry-point group::

    [project.entry-points.lamplighter]
    myplugin = "myplugin.plugin"

Registration hooks return small frozen records; the core collects them, rejects two plugins
that claim one name, and loads the heavy parts (a backend class, a checker) only when used.
Keep the plugin module itself light: the OS relaunches the application for every run, so
import heavy modules inside the ``load`` callables, not at the top of the plugin module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    # The records and protocols are created on first use (each class costs its creation,
    # and the OS starts the application again for every run); their home is this module.
    from lamplighter._hook_records import BackendInfo as BackendInfo
    from lamplighter._hook_records import Capabilities as Capabilities
    from lamplighter._hook_records import CheckerInfo as CheckerInfo
    from lamplighter._hook_records import ConstraintChecker as ConstraintChecker
    from lamplighter._hook_records import TriggerTypeInfo as TriggerTypeInfo
    from lamplighter._hook_records import Verdict as Verdict
    from lamplighter._hook_records import (
        WaitingConstraintChecker as WaitingConstraintChecker,
    )

__all__ = [
    "BackendInfo",
    "Capabilities",
    "CheckerInfo",
    "ConstraintChecker",
    "TriggerTypeInfo",
    "Verdict",
    "WaitingConstraintChecker",
    "hookimpl",
]

PROJECT_NAME = "lamplighter"

_F = TypeVar("_F", bound=Callable[..., object])


class _HookimplMarker:
    """pluggy's ``HookimplMarker`` for this project, written out: it marks a function with
    the same options, in the same attribute, so pluggy and the plugin manager read them as
    pluggy's own marker's. Marking a plugin's functions this way imports no pluggy, which a
    process the OS starts for one run does not need (see :mod:`lamplighter.plugins`)."""

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    @overload
    def __call__(
        self,
        function: _F,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
    ) -> _F: ...

    @overload
    def __call__(
        self,
        function: None = ...,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
    ) -> Callable[[_F], _F]: ...

    def __call__(
        self,
        function: _F | None = None,
        hookwrapper: bool = False,
        optionalhook: bool = False,
        tryfirst: bool = False,
        trylast: bool = False,
        specname: str | None = None,
        wrapper: bool = False,
    ) -> _F | Callable[[_F], _F]:
        """Mark ``function`` (or, without one, return a decorator that marks it) as a hook
        implementation, with pluggy's options: ``tryfirst``, ``trylast``, ``wrapper``,
        ``hookwrapper``, ``optionalhook``, ``specname``."""

        def mark(func: _F) -> _F:
            setattr(
                func,
                self.project_name + "_impl",
                {
                    "wrapper": wrapper,
                    "hookwrapper": hookwrapper,
                    "optionalhook": optionalhook,
                    "tryfirst": tryfirst,
                    "trylast": trylast,
                    "specname": specname,
                },
            )
            return func

        return mark if function is None else mark(function)


def _hookspec(func: _F) -> _F:
    """Mark ``func`` as a hook specification, as ``pluggy.HookspecMarker`` does with its
    default options (no hook of this project is historic or first-result)."""
    setattr(
        func,
        PROJECT_NAME + "_spec",
        {"firstresult": False, "historic": False, "warn_on_impl": None, "warn_on_impl_args": None},
    )
    return func


#: Marks a plugin function as the implementation of a ``lamplighter_*`` hook.
hookimpl = _HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# registration hooks
# --------------------------------------------------------------------------------------------


@_hookspec
def lamplighter_backends() -> Sequence[BackendInfo]:  # type: ignore[empty-body]
    """Return the backends this plugin provides.

    Called once, when the plugin manager loads. Each :class:`BackendInfo` names the backend,
    its platforms, its priority for ``backend="auto"``, its capabilities and a ``load``
    callable returning the :class:`~lamplighter.backend.Backend` subclass. Two plugins
    returning the same name is an error naming both distributions.
    """


@_hookspec
def lamplighter_constraint_checkers() -> Sequence[CheckerInfo]:  # type: ignore[empty-body]
    """Return the constraint checkers this plugin provides.

    Each :class:`CheckerInfo` names the ``Constraints`` fields it evaluates. A constraint
    no installed checker evaluates makes ``schedule()`` fail with a message naming the
    plugin that would evaluate it. Two checkers claiming one name or one constraint is an
    error naming both distributions.
    """


@_hookspec
def lamplighter_trigger_types() -> Sequence[TriggerTypeInfo]:  # type: ignore[empty-body]
    """Return the trigger types this plugin adds to the model.

    They are registered with the converter that stores requests, so a stored request using
    one of them loads again while the plugin is installed.
    """


# --------------------------------------------------------------------------------------------
# monitoring hooks
# --------------------------------------------------------------------------------------------


@_hookspec
def lamplighter_monitors(app: Any) -> Sequence[Any]:  # type: ignore[empty-body]
    """Return monitors to attach to ``app`` when it starts.

    A monitor is an object with an ``on_event(event)`` method, plain or ``async``; it
    receives every :class:`~lamplighter.events.MonitorEvent` of the application. A monitor
    that raises is reported as a ``LibraryError`` event and keeps receiving events.
    """


# --------------------------------------------------------------------------------------------
# the records and the checker protocols, created on first use
# --------------------------------------------------------------------------------------------

_RECORDS = frozenset(__all__) - {"hookimpl"}


def __getattr__(name: str) -> Any:
    if name not in _RECORDS:
        raise AttributeError(f"module 'lamplighter.hookspecs' has no attribute {name!r}")
    from lamplighter import _hook_records

    value = getattr(_hook_records, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _RECORDS)
