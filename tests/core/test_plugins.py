"""The plugin manager: discovery, isolation of broken plugins, conflicts, disabling."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lamplighter import hookimpl
from lamplighter.backend import Backend
from lamplighter.hookspecs import BackendInfo, Capabilities, CheckerInfo, Verdict
from lamplighter.model import Constraints
from lamplighter.plugins import DISABLE_ENV, PluginConflictError, PluginManager

CAPS = Capabilities(survives_process_death=False, survives_reboot=False, triggers={"one_time"})


def _backend(name: str) -> BackendInfo:
    return BackendInfo(name=name, load=lambda: Backend, capabilities=CAPS)


class BackendPlugin:
    def __init__(self, name: str, backend: str) -> None:
        self.name = name
        self.backend = backend

    @hookimpl
    def lamplighter_backends(self) -> Sequence[BackendInfo]:
        return [_backend(self.backend)]


class NetworkChecker:
    def check(self, constraints: Constraints) -> Sequence[Verdict]:
        return [Verdict(constraint="network", satisfied=True, reason="test")]


class CheckerPlugin:
    name = "net"

    @hookimpl
    def lamplighter_constraint_checkers(self) -> Sequence[CheckerInfo]:
        return [CheckerInfo(name="net", constraints={"network"}, load=NetworkChecker)]


def test_explicit_plugins_are_collected_without_reading_entry_points() -> None:
    manager = PluginManager([BackendPlugin("one", "alpha"), CheckerPlugin()], builtins=False)
    assert set(manager.backends) == {"alpha"}
    assert manager.checker_for("network") is not None
    assert manager.checker_for("charging") is None
    assert set(manager.plugins) == {"one", "net"}
    assert manager.failures == ()


def test_builtin_device_checker_is_registered_through_the_hooks() -> None:
    manager = PluginManager([])
    checker = manager.checker_for("battery_not_low")
    assert checker is not None
    assert checker.name == "device"
    assert manager.plugins["device"].distribution == "lamplighter"


def test_two_plugins_claiming_one_backend_name_is_an_error() -> None:
    manager = PluginManager([BackendPlugin("one", "alpha"), BackendPlugin("two", "alpha")])
    with pytest.raises(PluginConflictError, match="backend 'alpha' is claimed by both") as info:
        manager.load()
    assert "plugin 'one'" in str(info.value)
    assert "plugin 'two'" in str(info.value)
    # the error stays: the manager does not half-load on a second call
    with pytest.raises(PluginConflictError):
        _ = manager.backends


def test_two_checkers_claiming_one_constraint_is_an_error() -> None:
    class Other:
        name = "other"

        @hookimpl
        def lamplighter_constraint_checkers(self) -> Sequence[CheckerInfo]:
            return [CheckerInfo(name="other", constraints={"network"}, load=NetworkChecker)]

    with pytest.raises(PluginConflictError, match="constraint 'network' is claimed by both"):
        PluginManager([CheckerPlugin(), Other()]).load()


def test_disabled_by_argument_and_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = [BackendPlugin("one", "alpha"), BackendPlugin("two", "beta")]
    assert set(PluginManager(plugins, disable=["one"]).backends) == {"beta"}
    monkeypatch.setenv(DISABLE_ENV, "two, device")
    manager = PluginManager(plugins)
    assert set(manager.backends) == {"alpha"}
    assert manager.checker_for("charging") is None


def test_misspelled_hook_is_reported_and_isolated() -> None:
    class Typo:
        name = "typo"

        @hookimpl
        def lamplighter_backend(self) -> list[BackendInfo]:
            return [_backend("gamma")]

    manager = PluginManager([Typo(), BackendPlugin("one", "alpha")], builtins=False)
    assert set(manager.backends) == {"alpha"}
    [failure] = manager.failures
    assert failure.name == "typo"
    assert "unknown hooks ['lamplighter_backend']" in failure.error


def test_a_hook_with_wrong_arguments_is_reported() -> None:
    class WrongArgs:
        name = "wrong"

        @hookimpl
        def lamplighter_monitors(self, application: object) -> list[object]:
            return []

    manager = PluginManager([WrongArgs()], builtins=False)
    [failure] = manager.failures
    assert "application" in failure.error


def test_hook_that_raises_or_returns_junk_is_isolated() -> None:
    class Raises:
        name = "raises"

        @hookimpl
        def lamplighter_backends(self) -> list[BackendInfo]:
            raise RuntimeError("no D-Bus here")

    class Junk:
        name = "junk"

        @hookimpl
        def lamplighter_backends(self) -> list[object]:
            return ["systemd"]

    manager = PluginManager([Raises(), Junk(), BackendPlugin("one", "alpha")], builtins=False)
    assert set(manager.backends) == {"alpha"}
    errors = {f.name: f.error for f in manager.failures}
    assert "RuntimeError: no D-Bus here" in errors["raises"]
    assert "must return BackendInfo records, got str" in errors["junk"]


def test_monitors_hook_receives_the_app() -> None:
    seen = []

    class Mon:
        name = "mon"

        @hookimpl
        def lamplighter_monitors(self, app: object) -> list[object]:
            seen.append(app)
            return ["monitor"]

    app = object()
    assert PluginManager([Mon()], builtins=False).monitors(app) == ["monitor"]
    assert seen == [app]


# ------------------------------------------------------------------------- entry points


def _fake_distribution(site: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """Make an installed-looking distribution: a module plus a .dist-info directory."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[lamplighter]\n{ep_name} = {module}\n")


GOOD = """
from lamplighter import hookimpl
from lamplighter.backend import Backend
from lamplighter.hookspecs import BackendInfo, Capabilities

@hookimpl
def lamplighter_backends():
    caps = Capabilities(survives_process_death=True, survives_reboot=True, triggers={"calendar"})
    return [BackendInfo(name="{backend}", load=lambda: Backend, capabilities=caps)]
"""


def test_entry_points_are_discovered_and_a_broken_one_is_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path, "acme-good", "acme_good", GOOD.replace("{backend}", "acme"), "good"
    )
    _fake_distribution(
        tmp_path, "acme-broken", "acme_broken", "raise ImportError('libfoo')", "broken"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    assert "acme" in manager.backends
    assert manager.plugins["good"].distribution == "acme-good"
    broken = [f for f in manager.failures if f.name == "broken"]
    assert len(broken) == 1
    assert broken[0].distribution == "acme-broken"
    assert "libfoo" in str(broken[0])


def test_conflict_between_distributions_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(tmp_path, "acme-one", "acme_one", GOOD.replace("{backend}", "same"), "one")
    _fake_distribution(tmp_path, "acme-two", "acme_two", GOOD.replace("{backend}", "same"), "two")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginConflictError) as info:
        PluginManager().load()
    assert "acme-one" in str(info.value)
    assert "acme-two" in str(info.value)
    # disabling one resolves it
    assert "same" in PluginManager(disable=["two"]).backends


def test_constructing_a_manager_reads_no_entry_points() -> None:
    code = (
        "import sys; from lamplighter.plugins import PluginManager; PluginManager(); "
        "print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------- two steps


class Counting:
    """A plugin that counts the calls of each of its hooks."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def lamplighter_backends(self) -> list[BackendInfo]:
        self.calls.append("backends")
        return [_backend("counted")]

    @hookimpl
    def lamplighter_constraint_checkers(self) -> list[CheckerInfo]:
        self.calls.append("checkers")
        return []

    @hookimpl
    def lamplighter_monitors(self, app: object) -> list[object]:
        self.calls.append("monitors")
        return ["monitor"]


def test_monitors_register_the_plugins_without_calling_the_registration_hooks() -> None:
    plugin = Counting()
    manager = PluginManager([plugin], builtins=False)
    assert manager.monitors(object()) == ["monitor"]
    reported: list[str] = []
    manager.report_failures(lambda failure: reported.append(failure.name))
    assert reported == []
    assert plugin.calls == ["monitors"]
    # Anything the registration hooks answer calls them, once.
    assert set(manager.backends) == {"counted"}
    assert set(manager.plugins) == {"counting"}
    _ = manager.checkers, manager.report(), manager.failures
    assert plugin.calls == ["monitors", "backends", "checkers"]


def test_failures_are_reported_as_the_steps_that_find_them_end() -> None:
    class Misspelled:
        name = "misspelled"

        @hookimpl
        def lamplighter_backend(self) -> list[BackendInfo]:  # missing "s"
            return []

    class Raises:
        name = "raises"

        @hookimpl
        def lamplighter_backends(self) -> list[BackendInfo]:
            raise RuntimeError("no D-Bus here")

    class BrokenMonitor:
        name = "broken-monitor"

        @hookimpl
        def lamplighter_monitors(self, app: object) -> list[object]:
            raise RuntimeError("cannot build it")

    manager = PluginManager([Misspelled(), Raises(), BrokenMonitor()], builtins=False)
    first: list[str] = []
    manager.report_failures(lambda failure: first.append(failure.name))
    assert first == ["misspelled"]  # registering found it; no registration hook was called
    manager.monitors(object())
    assert first == ["misspelled", "broken-monitor"]
    # A listener added later gets what was found so far at once.
    later: list[str] = []
    manager.report_failures(lambda failure: later.append(failure.name))
    assert later == ["misspelled", "broken-monitor"]
    # The registration hook's failure shows once something calls it, to every listener.
    assert [f.name for f in manager.failures] == ["misspelled", "broken-monitor", "raises"]
    assert first == later == ["misspelled", "broken-monitor", "raises"]
    manager.load()
    assert len(first) == 3  # each failure once


def test_a_listener_that_raises_harms_nobody(caplog: pytest.LogCaptureFixture) -> None:
    class Raises:
        name = "raises"

        @hookimpl
        def lamplighter_backends(self) -> list[BackendInfo]:
            raise RuntimeError("no D-Bus here")

    def listener(_failure: object) -> None:
        raise OSError("the journal is gone")

    manager = PluginManager([Raises(), BackendPlugin("one", "alpha")], builtins=False)
    manager.report_failures(listener)
    assert set(manager.backends) == {"alpha"}
    assert "reporting plugin 'raises'" in caplog.text


def test_a_conflict_surfaces_when_the_records_are_collected() -> None:
    manager = PluginManager([BackendPlugin("one", "alpha"), BackendPlugin("two", "alpha")])
    assert manager.monitors(object()) == []  # registering alone finds no conflict
    with pytest.raises(PluginConflictError, match="backend 'alpha'"):
        _ = manager.backends


def test_the_records_are_made_on_first_use_and_keep_their_public_home() -> None:
    code = textwrap.dedent(
        """
        import json, pickle
        import attrs
        from lamplighter import hookspecs, plugins

        def made():
            return sorted(set(vars(hookspecs)) & set(names)) + sorted(
                {"LoadedPlugin", "PluginFailure"} & set(vars(plugins))
            )

        names = ["BackendInfo", "Capabilities", "CheckerInfo", "TriggerTypeInfo", "Verdict"]
        before = made()

        class App:
            app_id = "com.example.records"

        manager = plugins.PluginManager()
        manager.monitors(App())
        registered = made()
        listed = all(n in dir(hookspecs) for n in names) and "LoadedPlugin" in dir(plugins)
        homes = [getattr(hookspecs, n).__module__ for n in names]
        homes += [plugins.LoadedPlugin.__module__, plugins.PluginFailure.__module__]
        protocols = ["ConstraintChecker", "WaitingConstraintChecker"]
        homes += [getattr(hookspecs, n).__module__ for n in protocols]
        verdict = hookspecs.Verdict(constraint="network", satisfied=True)
        same = pickle.loads(pickle.dumps(verdict)) == verdict
        frozen = all(attrs.has(getattr(hookspecs, n)) for n in names)
        print(json.dumps([before, registered, listed, homes, same, frozen, repr(verdict)]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    before, registered, listed, homes, same, frozen, text = json.loads(out)
    assert before == registered == []
    assert listed
    assert (
        homes
        == ["lamplighter.hookspecs"] * 5
        + ["lamplighter.plugins"] * 2
        + ["lamplighter.hookspecs"] * 2
    )
    assert same and frozen
    assert text == "Verdict(constraint='network', satisfied=True, reason='', known=True)"


def test_unknown_names_of_the_modules_are_attribute_errors() -> None:
    from lamplighter import hookspecs, plugins

    with pytest.raises(AttributeError, match="BackendInf"):
        _ = hookspecs.BackendInf  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="Loaded"):
        _ = plugins.Loaded  # type: ignore[attr-defined]


def test_each_registration_hook_is_called_when_its_records_are_needed() -> None:
    plugin = Counting()
    manager = PluginManager([plugin], builtins=False)
    assert set(manager.backends) == {"counted"}
    assert plugin.calls == ["backends"]
    assert manager.checker_for("network") is None
    assert plugin.calls == ["backends", "checkers"]
    manager.load()
    assert plugin.calls == ["backends", "checkers"]  # each once


def test_a_conflict_between_checkers_leaves_the_backends_usable() -> None:
    class Other:
        name = "other"

        @hookimpl
        def lamplighter_constraint_checkers(self) -> Sequence[CheckerInfo]:
            return [CheckerInfo(name="other", constraints={"network"}, load=NetworkChecker)]

    manager = PluginManager([CheckerPlugin(), Other(), BackendPlugin("one", "alpha")])
    assert set(manager.backends) == {"alpha"}
    with pytest.raises(PluginConflictError, match="constraint 'network'"):
        manager.checker_for("network")
    with pytest.raises(PluginConflictError, match="constraint 'network'"):
        manager.load()
    assert set(manager.backends) == {"alpha"}


def test_plugin_modules_register_as_pluggy_itself_would_register_them() -> None:
    import types

    import pluggy

    from lamplighter import _device_plugin
    from lamplighter._pluggy import Registry as _Registry
    from lamplighter.plugins import _Specs

    odd = types.ModuleType("odd_plugin")
    exec(  # a plugin module written out here
        textwrap.dedent(
            """
            from lamplighter import hookimpl

            @hookimpl(specname="lamplighter_backends")
            def my_backends():
                return []

            @hookimpl
            def lamplighter_monitors(app):
                return []

            class Holder:
                @staticmethod
                @hookimpl
                def lamplighter_trigger_types():
                    return []

            lamplighter_trigger_types = Holder.__dict__["lamplighter_trigger_types"]
            lamplighter_constraint_checkers = ["not a function"]
            """
        ),
        odd.__dict__,
    )
    modules = [_device_plugin, odd]
    for name in ("inprocess", "launchd", "logging", "reachability", "systemd", "windows"):
        module = pytest.importorskip(f"lamplighter_{name}.plugin")
        modules.append(module)

    def hooks(manager: pluggy.PluginManager, module: object) -> list[tuple[str, str]]:
        manager.register(module)
        return sorted(
            (caller.name, impl.function.__name__)
            for caller in manager.get_hookcallers(module) or []
            for impl in caller.get_hookimpls()
            if impl.plugin is module
        )

    for module in modules:
        ours, pluggys = _Registry("lamplighter"), pluggy.PluginManager("lamplighter")
        ours.add_hookspecs(_Specs)
        pluggys.add_hookspecs(_Specs)
        assert hooks(ours, module) == hooks(pluggys, module), module
    assert hooks(_Registry("lamplighter"), odd) == [
        ("lamplighter_backends", "my_backends"),
        ("lamplighter_monitors", "lamplighter_monitors"),
        ("lamplighter_trigger_types", "lamplighter_trigger_types"),
    ]


# Plugin modules of every shape pluggy's registration tells apart, for the registry that
# registers plain ones without pluggy (lamplighter.plugins._Hooks).
_SHAPES = {
    "plain": """
        @hookimpl
        def lamplighter_monitors(app):
            return ["plain"]

        @hookimpl
        def lamplighter_backends():
            return []
        """,
    "first": """
        @hookimpl(tryfirst=True)
        def lamplighter_monitors(app):
            return ["first"]
        """,
    "last": """
        @hookimpl(trylast=True)
        def lamplighter_monitors():
            return ["last"]
        """,
    "renamed": """
        @hookimpl(specname="lamplighter_monitors")
        def monitors(app):
            return []

        @hookimpl(specname="lamplighter_monitors", tryfirst=True)
        def more_monitors(app):
            return []
        """,
    "defaults": """
        @hookimpl
        def lamplighter_monitors(app, extra=1):
            return []
        """,
    "extra_argument": """
        @hookimpl
        def lamplighter_monitors(app, other):
            return []
        """,
    "unknown": """
        @hookimpl
        def lamplighter_nothing():
            return []
        """,
    "optional": """
        @hookimpl(optionalhook=True)
        def lamplighter_nothing():
            return []
        """,
    "wrapper": """
        @hookimpl(wrapper=True)
        def lamplighter_monitors(app):
            return (yield)
        """,
    "hookwrapper": """
        @hookimpl(hookwrapper=True)
        def lamplighter_monitors(app):
            yield
        """,
    "not_a_generator": """
        @hookimpl(wrapper=True)
        def lamplighter_monitors(app):
            return []
        """,
    "static": """
        class Holder:
            @staticmethod
            @hookimpl
            def lamplighter_monitors(app):
                return []

        lamplighter_monitors = Holder.__dict__["lamplighter_monitors"]
        """,
    "wrapped": """
        import functools

        def inner(app):
            return []

        @hookimpl
        @functools.wraps(inner)
        def lamplighter_monitors(*args):
            return []
        """,
    "odd_mark": """
        def lamplighter_monitors(app):
            return []

        lamplighter_monitors.lamplighter_impl = "not options"
        """,
    "bare_mark": """
        def lamplighter_monitors(app):
            return []

        lamplighter_monitors.lamplighter_impl = {}
        """,
    "method_like": """
        class Holder:
            @hookimpl
            def lamplighter_monitors(self, app):
                return []

        lamplighter_monitors = Holder.lamplighter_monitors
        """,
    "lazy": """
        def __getattr__(name):
            raise AttributeError(name)

        def __dir__():
            return ["lamplighter_monitors", "lamplighter_backends"]

        @hookimpl
        def lamplighter_monitors(app):
            return []
        """,
}


def _shape(name: str) -> object:
    import types

    module = types.ModuleType(f"shape_{name}")
    exec("from lamplighter import hookimpl\n" + textwrap.dedent(_SHAPES[name]), module.__dict__)
    return module


class _InstancePlugin:
    @staticmethod
    def helper() -> None:
        pass

    def lamplighter_monitors(self, app: object) -> list[object]:
        return []


hookimpl(_InstancePlugin.lamplighter_monitors)


def _registered(registry: Any, plugins: list[tuple[object, str]], pluggy_alone: bool) -> Any:
    """What registering ``plugins`` in order leaves: each hook's implementations (plugin name,
    function) in order, and each plugin's outcome."""
    from lamplighter.plugins import _SPEC_ARGS

    outcomes = []
    for plugin, name in plugins:
        try:
            if pluggy_alone:
                registry.register(plugin, name=name)
                callers = registry.get_hookcallers(plugin) or []
                unknown = [caller.name for caller in callers if caller.spec is None]
                if unknown:
                    registry.unregister(plugin)
            else:
                unknown = registry.register(plugin, name)
        except Exception as exc:
            outcomes.append((name, f"{type(exc).__name__}: {exc}"))
            continue
        outcomes.append((name, sorted(unknown)))
    if pluggy_alone:
        impls = {h: getattr(registry.hook, h).get_hookimpls() for h in _SPEC_ARGS}
    else:
        impls = {h: registry.impls(h) for h in _SPEC_ARGS}
    return outcomes, {h: [(i.plugin_name, i.function) for i in found] for h, found in impls.items()}


def test_plugins_register_as_with_pluggy_alone_in_every_order() -> None:
    import itertools

    import pluggy

    from lamplighter import _device_plugin
    from lamplighter.plugins import _Hooks, _Specs

    plain = ["plain", "first", "last", "renamed", "defaults", "lazy", "bare_mark", "odd_mark"]
    odd = [name for name in _SHAPES if name not in plain]
    shapes = {name: _shape(name) for name in _SHAPES}
    real = [(_device_plugin, "device")]
    for name in ("inprocess", "launchd", "logging", "reachability", "systemd", "windows"):
        real.append((pytest.importorskip(f"lamplighter_{name}.plugin"), name))
    instance = _InstancePlugin()
    sequences = [real + [(shapes[n], n) for n in plain]]
    sequences += [[(shapes[n], n) for n in order] for order in itertools.permutations(plain[:4])]
    for name in odd:  # each odd one first, in the middle and last: pluggy takes over there
        for at in (0, 3, len(plain)):
            sequence = [(shapes[n], n) for n in plain]
            sequence.insert(at, (shapes[name], name))
            sequences.append(real + sequence)
    sequences.append([(shapes["plain"], "plain"), (instance, "instance"), *real])
    sequences.append([(shapes["plain"], "plain"), (shapes["plain"], "again"), *real])
    sequences.append([(shapes["plain"], "plain"), (shapes["first"], "plain"), *real])
    for sequence in sequences:
        ours = _Hooks()
        mine = _registered(ours, sequence, pluggy_alone=False)
        reference = pluggy.PluginManager("lamplighter")
        reference.add_hookspecs(_Specs)
        assert mine == _registered(reference, sequence, pluggy_alone=True), sequence
        # pluggy was needed exactly when a plugin was not a plain one, or came again
        plain_only = all(
            name in plain or module in [m for m, _ in real] for module, name in sequence
        )
        again = len({id(m) for m, _ in sequence} | {n for _, n in sequence}) < 2 * len(sequence)
        assert (ours._pm is None) == (plain_only and not again), sequence


def test_only_plain_plugin_modules_register_without_pluggy() -> None:
    from lamplighter.plugins import _Hooks

    hooks = _Hooks()
    assert hooks.register(_shape("plain"), "plain") == []
    assert hooks._pm is None
    [impl] = hooks.impls("lamplighter_monitors")
    assert impl.plugin_name == "plain" and impl.function(app=None) == ["plain"]
    assert hooks.register(_shape("unknown"), "unknown") == ["lamplighter_nothing"]
    assert hooks._pm is not None
    assert [i.plugin_name for i in hooks.impls("lamplighter_monitors")] == ["plain"]
    assert [i.plugin_name for i in hooks.impls("lamplighter_backends")] == ["plain"]


def test_the_hook_marks_are_pluggys() -> None:
    import pluggy

    from lamplighter import hookspecs

    theirs = pluggy.HookimplMarker("lamplighter")
    for options in (
        {},
        {"tryfirst": True},
        {"trylast": True, "optionalhook": True},
        {"wrapper": True},
        {"hookwrapper": True, "specname": "lamplighter_monitors"},
    ):

        def ours() -> None:
            pass

        def reference() -> None:
            pass

        if options:
            hookspecs.hookimpl(**options)(ours)
            theirs(**options)(reference)
        else:
            assert hookspecs.hookimpl(ours) is ours
            theirs(reference)
        assert ours.lamplighter_impl == reference.lamplighter_impl  # type: ignore[attr-defined]

    def spec() -> None:
        pass

    pluggy.HookspecMarker("lamplighter")(spec)
    for name in ("lamplighter_backends", "lamplighter_monitors"):
        assert getattr(hookspecs, name).lamplighter_spec == spec.lamplighter_spec  # type: ignore[attr-defined]
