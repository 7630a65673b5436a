"""pluggy's plugin manager, for the plugins :class:`lamplighter.plugins.PluginManager` does
not register itself (see ``_Hooks`` there): imported only when such a plugin is registered."""

from __future__ import annotations

import types

import pluggy

__all__ = ["Registry"]

# What pluggy accepts as a hook implementation found on a module (as in lamplighter.plugins).
_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)


class Registry(pluggy.PluginManager):
    """pluggy's plugin manager, looking at a plugin module's names faster.

    pluggy looks at every name of a plugin with ``inspect.getattr_static``, which for a
    module is a dictionary lookup behind several checks of the module's type; a plugin
    module holds a score of names (its imports, its helpers). A name of a module whose value
    is no function or method cannot be a hook for pluggy either: that is decided here from
    the module's ``__dict__``, and everything else is left to pluggy.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, types.ModuleType) and not isinstance(
            plugin.__dict__.get(name), _HOOKABLE
        ):
            return None
        return super().parse_hookimpl_opts(plugin, name)
