"""How an application configures the network checker: in code, or through the environment.

The OS starts the application again for every scheduled run, and the application's
``main()`` runs in that process too, so a :func:`configure` call made at start-up (next to
``Lamplighter(...)``) applies to the runs the OS launches as well as to the long-running
process. Environment variables do the same without code, for operators and for launch
environments the application sets up itself:

- ``LAMPLIGHTER_REACHABILITY_PROBE``: ``host:port`` to open a TCP connection to when a
  network constraint is checked (``[::1]:443`` for an IPv6 address); empty or unset: no
  probe.
- ``LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT``: seconds the probe may take (default 2).
- ``LAMPLIGHTER_REACHABILITY_UNKNOWN``: the :class:`UnknownRule`, by value
  (``count_as_metered``, ``count_as_unmetered`` or ``unsatisfied``).

A setting given to :func:`configure` wins over the environment; a setting it was not given
comes from the environment, else from the default. Importing this module is cheap.
"""

from __future__ import annotations

import enum
import math
import os
import threading
from collections.abc import Collection, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "ENV_PROBE",
    "ENV_PROBE_TIMEOUT",
    "ENV_UNKNOWN",
    "Probe",
    "ReachabilitySettings",
    "UnknownRule",
    "configure",
    "current_settings",
    "settings_from_environment",
]

ENV_PROBE: Final = "LAMPLIGHTER_REACHABILITY_PROBE"
ENV_PROBE_TIMEOUT: Final = "LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT"
ENV_UNKNOWN: Final = "LAMPLIGHTER_REACHABILITY_UNKNOWN"

#: The longest probe timeout accepted: a check must stay quick.
MAX_PROBE_TIMEOUT = 60.0


class UnknownRule(enum.Enum):
    """What an unknown cost or roaming state counts as.

    The platform cannot always tell whether a connection is metered or roaming (no
    NetworkManager, a driver that does not say, an unsupported platform). The verdict is
    then ``known=False`` and its ``satisfied`` follows this rule:

    - ``COUNT_AS_METERED`` (the default): an unknown cost counts as metered and an unknown
      roaming state as roaming, so ``UNMETERED`` and ``NOT_ROAMING`` work waits and
      ``METERED`` work runs;
    - ``COUNT_AS_UNMETERED``: an unknown cost counts as unmetered and an unknown roaming
      state as not roaming, so ``UNMETERED`` and ``NOT_ROAMING`` work runs and ``METERED``
      work waits;
    - ``UNSATISFIED``: nothing that depends on the unknown state runs.
    """

    COUNT_AS_METERED = "count_as_metered"
    COUNT_AS_UNMETERED = "count_as_unmetered"
    UNSATISFIED = "unsatisfied"

    @classmethod
    def of(cls, value: object, *, field: str = "unknown") -> UnknownRule:
        """``value`` as a rule: a rule, or its value (``"count_as_metered"``) or name, in
        any case."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            for rule in cls:
                if text in (rule.value, rule.name.lower()):
                    return rule
        allowed = ", ".join(repr(rule.value) for rule in cls)
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}")


def _check_port(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"probe port must be an integer from 1 to 65535, got {value!r}")


def _check_host(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"probe host must be a host name or IP address, got {value!r}")


@attrs.frozen(kw_only=True)
class Probe:
    """A TCP endpoint whose answer proves the network works: ``host`` accepts a connection
    on ``port``.

    Attributes:
        host: a host name or an IP address (IPv6 without brackets).
        port: the TCP port, 1 to 65535.
    """

    host: str = attrs.field(validator=_check_host)
    port: int = attrs.field(validator=_check_port)

    @classmethod
    def of(cls, value: object, *, field: str = "probe") -> Probe | None:
        """``value`` as a probe: a :class:`Probe`, ``"host:port"`` (``"[::1]:443"`` for an
        IPv6 address), a ``(host, port)`` pair, or None / ``""`` for no probe."""
        if value is None or isinstance(value, Probe):
            return value
        if isinstance(value, str):
            return cls._parse(value.strip(), field)
        if isinstance(value, tuple | list) and len(value) == 2:
            host, port = value
            return cls(host=host, port=port)
        raise ValueError(f"{field} must be 'host:port', a (host, port) pair or None, got {value!r}")

    @classmethod
    def _parse(cls, text: str, field: str) -> Probe | None:
        if not text:
            return None
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            ok = bool(sep) and rest.startswith(":")
        else:
            host, sep, port_text = text.rpartition(":")
            ok = bool(sep) and ":" not in host
        if not ok or not port_text.isdigit():
            raise ValueError(
                f"{field} must be 'host:port' (an IPv6 address in brackets: '[::1]:443'), "
                f"got {text!r}"
            )
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _check_timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0 < value <= MAX_PROBE_TIMEOUT
    ):
        raise ValueError(
            f"probe_timeout must be a number of seconds above 0 and at most "
            f"{MAX_PROBE_TIMEOUT:g}, got {value!r}"
        )


def _to_rule(value: object) -> UnknownRule:
    return UnknownRule.of(value)


@attrs.frozen(kw_only=True)
class ReachabilitySettings:
    """The network checker's settings.

    Attributes:
        probe: the endpoint to connect to when a network constraint is checked, or None
            (the default): without one, nothing is sent anywhere and the connection is
            judged from the interfaces and routes alone.
        probe_timeout: seconds the probe's TCP connection may take.
        unknown: what an unknown cost or roaming state counts as.
    """

    probe: Probe | None = None
    probe_timeout: float = attrs.field(default=2.0, validator=_check_timeout)
    unknown: UnknownRule = attrs.field(default=UnknownRule.COUNT_AS_METERED, converter=_to_rule)


_UNSET: Any = object()
_lock = threading.Lock()
_configured: dict[str, Any] = {}


def configure(
    *,
    probe: Probe | str | tuple[str, int] | None = _UNSET,
    probe_timeout: float = _UNSET,
    unknown: UnknownRule | str = _UNSET,
) -> ReachabilitySettings:
    """Configure the network checker for this process.

    Call it where the application starts (its ``main()``), so processes the OS launches
    for scheduled runs are configured the same way. Each call replaces the previous one: a
    setting it is not given comes from the environment, else from its default, so
    ``configure()`` with no arguments undoes earlier calls.

    Args:
        probe: ``"host:port"``, a ``(host, port)`` pair or a :class:`Probe` to connect to
            on every check; None: no probe, whatever the environment says.
        probe_timeout: seconds the probe may take (above 0, at most 60).
        unknown: the :class:`UnknownRule`, or its value.

    Returns:
        The settings now in force.

    Raises:
        ValueError: a setting, or the environment variable of a setting not given, is
            invalid (the message names it and what is allowed); the previous configuration
            then stays in force.
    """
    given: dict[str, Any] = {}
    if probe is not _UNSET:
        given["probe"] = Probe.of(probe)
    if probe_timeout is not _UNSET:
        given["probe_timeout"] = probe_timeout
    if unknown is not _UNSET:
        given["unknown"] = UnknownRule.of(unknown)
    # Validate everything before anything changes.
    settings = ReachabilitySettings(**{**settings_from_environment(skip=given.keys()), **given})
    with _lock:
        _configured.clear()
        _configured.update(given)
    return settings


def settings_from_environment(
    environ: Mapping[str, str] | None = None, *, skip: Collection[str] = ()
) -> dict[str, Any]:
    """The settings the environment gives, by field name (only those it sets).

    Args:
        environ: the environment (default: ``os.environ``).
        skip: field names not to read (those configured in code).

    Raises:
        ValueError: a variable holds something invalid; the message names the variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    raw = env.get(ENV_PROBE)
    if raw is not None and "probe" not in skip:
        values["probe"] = Probe.of(raw, field=ENV_PROBE)
    raw = env.get(ENV_PROBE_TIMEOUT, "").strip()
    if raw and "probe_timeout" not in skip:
        try:
            timeout = float(raw)
            _check_timeout(None, attrs.fields(ReachabilitySettings).probe_timeout, timeout)
        except ValueError:
            raise ValueError(
                f"{ENV_PROBE_TIMEOUT} must be a number of seconds above 0 and at most "
                f"{MAX_PROBE_TIMEOUT:g}, got {raw!r}"
            ) from None
        values["probe_timeout"] = timeout
    raw = env.get(ENV_UNKNOWN, "").strip()
    if raw and "unknown" not in skip:
        values["unknown"] = UnknownRule.of(raw, field=ENV_UNKNOWN)
    return values


def current_settings(environ: Mapping[str, str] | None = None) -> ReachabilitySettings:
    """The settings in force: :func:`configure`'s, then the environment's, then the
    defaults.

    Raises:
        ValueError: an environment variable the configuration does not override holds
            something invalid.
    """
    with _lock:
        configured = dict(_configured)
    values = settings_from_environment(environ, skip=configured.keys())
    values.update(configured)
    return ReachabilitySettings(**values)
