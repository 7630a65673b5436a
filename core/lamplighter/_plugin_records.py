"""The plugin manager's records: :class:`LoadedPlugin` and :class:`PluginFailure`.

Their public home is :mod:`lamplighter.plugins`, which creates them on first use: the plugin
manager is built in every process the OS starts for a run, keeps what it registers as plain
values, and an attrs class costs its creation.
"""

from __future__ import annotations

import attrs

__all__ = ["LoadedPlugin", "PluginFailure"]


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


for _cls in (PluginFailure, LoadedPlugin):
    _cls.__module__ = "lamplighter.plugins"
