"""Bounded waiting: ``ConstraintEvaluator.wait_until_satisfied`` in the core, and the
network checker's ``wait_for`` woken by NetworkManager's signals and by netlink.

Every wait here has a bound, and the pauses of the checkers are set far above the time the
tests allow, so a test that passes proves the wake-up came from the event, not from a
re-check that happened to fall in time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dbus_stand_ins import read_line
from reachability_helpers import (
    NM,
    FakeNetworkManager,
    isolated_env,
    needs_netns,
)

from lamplighter.constraints import ConstraintEvaluator
from lamplighter.hookspecs import CheckerInfo, Verdict, hookimpl
from lamplighter.model import Constraints, NetworkType
from lamplighter.plugins import PluginManager
from lamplighter_reachability import plugin
from lamplighter_reachability.checker import ReachabilityChecker
from lamplighter_reachability.connectivity import read_connectivity
from lamplighter_reachability.networkmanager import NM_PATH

UNMETERED = Constraints(network=NetworkType.UNMETERED)
SLOW = 60.0  # a pause no test waits for
T = TypeVar("T")


def in_loop(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run a coroutine test function on a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(test(*args, **kwargs))

    return run


# --------------------------------------------------------------------------------------------
# the evaluator, with checkers the tests control
# --------------------------------------------------------------------------------------------


class Switch:
    """A checker whose constraint holds once ``on`` is set; it records every check."""

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        self.on = False
        self.checks: list[float] = []

    def check(self, constraints: Constraints) -> Sequence[Verdict]:
        if self.constraint not in constraints.required():
            return []
        self.checks.append(time.monotonic())
        return [
            Verdict(
                constraint=self.constraint,
                satisfied=self.on,
                reason="switched on" if self.on else "switched off",
            )
        ]


class WaitingSwitch(Switch):
    """A switch that can wait: ``flip()`` turns it on and wakes the waiters."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.waits = 0
        self.waiting = asyncio.Event()
        self._flipped = asyncio.Event()

    def flip(self) -> None:
        self.on = True
        self._flipped.set()

    async def wait_for(self, constraints: Constraints, timeout: float) -> Sequence[Verdict]:
        self.waits += 1
        self.waiting.set()
        try:
            await asyncio.wait_for(self._flipped.wait(), timeout)
        except TimeoutError:
            pass
        return self.check(constraints)


class Impatient(Switch):
    """A checker that breaks the contract: its wait returns at once, unsatisfied."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.waits = 0

    async def wait_for(self, constraints: Constraints, timeout: float) -> Sequence[Verdict]:
        self.waits += 1
        return self.check(constraints)


class Checkers:
    """A plugin registering the given checkers, one per constraint."""

    name = "test-checkers"

    def __init__(self, **checkers: Switch) -> None:
        self.checkers = checkers

    @hookimpl
    def lamplighter_constraint_checkers(self) -> list[CheckerInfo]:
        return [
            CheckerInfo(
                name=f"switch-{name.replace('_', '-')}", constraints=name, load=lambda c=c: c
            )
            for name, c in self.checkers.items()
        ]


def _evaluator(**checkers: Switch) -> ConstraintEvaluator:
    return ConstraintEvaluator(PluginManager(plugins=[Checkers(**checkers)], builtins=False))


@in_loop
async def test_a_waiting_checker_is_woken_by_its_event() -> None:
    switch = WaitingSwitch("charging")
    evaluator = _evaluator(charging=switch)
    waiter = asyncio.ensure_future(
        evaluator.wait_until_satisfied(Constraints(charging=True), 30, poll_initial=SLOW)
    )
    await asyncio.wait_for(switch.waiting.wait(), 10)
    assert not waiter.done()
    started = time.monotonic()
    switch.flip()
    (verdict,) = await asyncio.wait_for(waiter, 10)
    assert (verdict.constraint, verdict.satisfied, verdict.reason) == (
        "charging",
        True,
        "switched on",
    )
    assert time.monotonic() - started < 10
    # One check before waiting, one by the waiter, one by the evaluator after the wake-up.
    assert len(switch.checks) == 3 and switch.waits == 1


@in_loop
async def test_a_checker_that_cannot_wait_is_checked_after_growing_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Virtual time: the loop's clock moves only by the pauses the evaluator takes, so what
    # is checked does not depend on how promptly a loaded machine wakes the loop.
    loop = asyncio.get_running_loop()
    now = [0.0]
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        pauses.append(delay)
        now[0] += delay
        return await real_sleep(0, result)

    monkeypatch.setattr(loop, "time", lambda: now[0])
    monkeypatch.setattr(asyncio, "sleep", sleep)
    switch = Switch("charging")
    evaluator = _evaluator(charging=switch)
    (verdict,) = await evaluator.wait_until_satisfied(
        Constraints(charging=True), 1.6, poll_initial=0.1, poll_max=0.4
    )
    assert not verdict.satisfied and verdict.reason == "switched off"
    # Pauses of 0.1, 0.2, 0.4, then 0.4 (the cap) until the bound: no tight loop.
    assert pauses == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4, 0.1])
    assert now[0] == pytest.approx(1.6)
    assert len(switch.checks) == len(pauses) + 1  # once at first, then after each pause


@in_loop
async def test_a_polled_condition_that_becomes_true_is_seen() -> None:
    switch = Switch("charging")
    evaluator = _evaluator(charging=switch)

    async def flip_after_two_checks() -> None:
        while len(switch.checks) < 2:
            await asyncio.sleep(0.01)
        switch.on = True

    flipper = asyncio.ensure_future(flip_after_two_checks())
    (verdict,) = await evaluator.wait_until_satisfied(
        Constraints(charging=True), 20, poll_initial=0.05, poll_max=0.2
    )
    await flipper
    assert verdict.satisfied
    assert 2 <= len(switch.checks) <= 4  # seen at the first check after the flip


@in_loop
async def test_a_condition_that_never_holds_is_unsatisfied_at_the_bound() -> None:
    switch = WaitingSwitch("charging")
    evaluator = _evaluator(charging=switch)
    started = time.monotonic()
    (verdict,) = await evaluator.wait_until_satisfied(Constraints(charging=True), 0.5)
    elapsed = time.monotonic() - started
    assert (verdict.satisfied, verdict.reason) == (False, "switched off")
    assert 0.5 <= elapsed < 0.5 + 5
    assert switch.waits == 1  # one wait for the whole bound, not a loop of them


@in_loop
async def test_a_waiter_that_returns_early_is_polled_instead() -> None:
    impatient = Impatient("charging")
    evaluator = _evaluator(charging=impatient)
    (verdict,) = await evaluator.wait_until_satisfied(
        Constraints(charging=True), 1.0, poll_initial=0.2, poll_max=0.2
    )
    assert not verdict.satisfied
    assert impatient.waits == 1
    assert len(impatient.checks) <= 1 + 1 + 1.0 / 0.2 + 1


@in_loop
async def test_every_constraint_must_hold_and_only_narrows_the_wait() -> None:
    network, charging = WaitingSwitch("network"), Switch("charging")
    evaluator = _evaluator(network=network, charging=charging)
    both = Constraints(network=NetworkType.CONNECTED, charging=True)
    waiter = asyncio.ensure_future(
        evaluator.wait_until_satisfied(both, 30, poll_initial=0.05, poll_max=0.1)
    )
    await asyncio.wait_for(network.waiting.wait(), 10)
    network.flip()
    await asyncio.sleep(0.3)  # the network holds now, charging still does not
    assert not waiter.done()
    charging.on = True
    verdicts = await asyncio.wait_for(waiter, 10)
    assert [(v.constraint, v.satisfied) for v in verdicts] == [
        ("network", True),
        ("charging", True),
    ]
    checks = len(charging.checks)
    (verdict,) = await evaluator.wait_until_satisfied(both, 5, only=("network",))
    assert verdict.constraint == "network" and verdict.satisfied
    assert len(charging.checks) == checks  # not evaluated at all


@in_loop
async def test_zero_timeout_evaluates_once() -> None:
    switch = WaitingSwitch("charging")
    (verdict,) = await _evaluator(charging=switch).wait_until_satisfied(
        Constraints(charging=True), 0
    )
    assert not verdict.satisfied and switch.waits == 0 and len(switch.checks) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be a finite number of seconds, 0 or more, got -1"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"timeout": 1, "poll_initial": 0}, "poll_initial must be a finite number > 0, got 0"),
        ({"timeout": 1, "only": ("wifi",)}, r"only names \['wifi'\], which are not constraints"),
    ],
)
@in_loop
async def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    evaluator = _evaluator(charging=Switch("charging"))
    with pytest.raises(ValueError, match=message):
        await evaluator.wait_until_satisfied(Constraints(charging=True), **kwargs)


# --------------------------------------------------------------------------------------------
# the network checker, woken by NetworkManager's signals
# --------------------------------------------------------------------------------------------


class WaitingLog(logging.Handler):
    """Sets ``waiting`` when the checker logs that it starts waiting."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.waiting = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("waiting up to"):
            self.messages.append(message)
            self.waiting.set()


@pytest.fixture
def waiting_log() -> Iterator[WaitingLog]:
    handler = WaitingLog()
    log = logging.getLogger("lamplighter_reachability.checker")
    previous = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(previous)


@pytest.fixture
def connected_host() -> None:
    state = read_connectivity()
    if not state.connected:
        pytest.skip(f"the cost is only read while connected ({state.description})")


@pytest.mark.usefixtures("connected_host")
@in_loop
async def test_unmetered_is_seen_when_networkmanager_says_so(
    fake_nm: FakeNetworkManager, waiting_log: WaitingLog
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 1)
    checker = ReachabilityChecker(poll_initial=SLOW)
    waiter = asyncio.ensure_future(checker.wait_for(UNMETERED, 40))
    await asyncio.wait_for(waiting_log.waiting.wait(), 20)
    assert "woken by netlink, NetworkManager signals" in waiting_log.messages[0]
    started = time.monotonic()
    fake_nm.set(NM_PATH, NM, "Metered", "u", 2)
    (verdict,) = await asyncio.wait_for(waiter, 30)
    assert (verdict.satisfied, verdict.known) == (True, True)
    assert verdict.reason.endswith("; not metered (NetworkManager: Metered=no)")
    assert time.monotonic() - started < 20  # the next pause would have come after 60 s


@pytest.mark.usefixtures("connected_host")
@in_loop
async def test_the_evaluator_lets_the_network_checker_wait(
    fake_nm: FakeNetworkManager, waiting_log: WaitingLog
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 3)
    evaluator = ConstraintEvaluator(PluginManager(plugins=[plugin], builtins=False))
    waiter = asyncio.ensure_future(evaluator.wait_until_satisfied(UNMETERED, 40, poll_initial=SLOW))
    await asyncio.wait_for(waiting_log.waiting.wait(), 20)
    started = time.monotonic()
    fake_nm.set(NM_PATH, NM, "Metered", "u", 4)
    (verdict,) = await asyncio.wait_for(waiter, 30)
    assert verdict.satisfied
    assert verdict.reason.endswith("; not metered (NetworkManager guesses so: Metered=guess-no)")
    assert time.monotonic() - started < 20


@pytest.mark.usefixtures("connected_host")
@in_loop
async def test_a_metered_network_that_stays_metered_is_unsatisfied_at_the_bound(
    fake_nm: FakeNetworkManager,
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 1)
    checker = ReachabilityChecker(poll_initial=0.2, poll_max=0.4)
    started = time.monotonic()
    (verdict,) = await checker.wait_for(UNMETERED, 1.5)
    elapsed = time.monotonic() - started
    assert (verdict.satisfied, verdict.known) == (False, True)
    assert verdict.reason.endswith("; metered (NetworkManager: Metered=yes); UNMETERED required")
    assert 1.5 <= elapsed < 1.5 + 5
    # Checks at 0, 0.2, 0.6, 1.0, 1.4 and the bound: a handful, not a loop. (Fewer when a
    # loaded machine wakes the loop late; never more.)
    assert 1 <= fake_nm.metered_reads() <= 8


@pytest.mark.usefixtures("connected_host")
@in_loop
async def test_cancelling_a_wait_stops_it_and_closes_what_it_watched(
    fake_nm: FakeNetworkManager, waiting_log: WaitingLog
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 1)
    waiter = asyncio.ensure_future(ReachabilityChecker(poll_initial=SLOW).wait_for(UNMETERED, 40))
    await asyncio.wait_for(waiting_log.waiting.wait(), 20)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Nothing was left open: a socket left to the garbage collector is reported as an
    # unraisable ResourceWarning, which fails the test.
    assert waiter.cancelled()


@in_loop
async def test_wait_for_refuses_a_bad_timeout_and_ignores_no_network() -> None:
    checker = ReachabilityChecker()
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
        await checker.wait_for(UNMETERED, float("nan"))
    assert await checker.wait_for(Constraints(), 5) == []


# --------------------------------------------------------------------------------------------
# the network checker, woken by netlink in a network namespace the test changes
# --------------------------------------------------------------------------------------------

WAITER = textwrap.dedent(
    """
    import asyncio, json, logging, sys, time
    from lamplighter.model import Constraints, NetworkType
    from lamplighter_reachability.checker import ReachabilityChecker

    class Ready(logging.Handler):
        said = False
        def emit(self, record):
            if not self.said and record.getMessage().startswith("waiting up to"):
                self.said = True
                print(json.dumps({"waiting": record.getMessage()}), flush=True)

    log = logging.getLogger("lamplighter_reachability.checker")
    log.setLevel(logging.DEBUG)
    log.addHandler(Ready())
    checker = ReachabilityChecker(poll_initial=float(sys.argv[2]), poll_max=float(sys.argv[2]))
    started = time.monotonic()
    constraints = Constraints(network=NetworkType.CONNECTED)
    (verdict,) = asyncio.run(checker.wait_for(constraints, float(sys.argv[1])))
    print(json.dumps({"satisfied": verdict.satisfied, "reason": verdict.reason,
                      "elapsed": time.monotonic() - started}), flush=True)
    """
)


def _start_waiter(tmp_path: Path, timeout: float, pause: float) -> subprocess.Popen[bytes]:
    with (tmp_path / "waiter.err").open("wb") as errors:
        return subprocess.Popen(
            ["unshare", "-n", sys.executable, "-c", WAITER, str(timeout), str(pause)],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=isolated_env(tmp_path),
        )


@needs_netns
def test_a_network_that_comes_up_is_seen_through_netlink(tmp_path: Path) -> None:
    nsenter, ip = shutil.which("nsenter"), shutil.which("ip")
    if nsenter is None or ip is None:
        pytest.skip("nsenter and ip (util-linux, iproute2) are needed to change the namespace")
    waiter = _start_waiter(tmp_path, timeout=60, pause=SLOW * 10)
    try:
        assert waiter.stdout is not None
        waiting = json.loads(read_line(waiter.stdout, "the waiting process"))["waiting"]
        assert "not connected: no network interface other than loopback is up" in waiting
        assert waiting.endswith("woken by netlink")
        started = time.monotonic()
        for args in (
            ["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            ["addr", "add", "10.99.0.2/24", "dev", "v0"],
            ["link", "set", "v1", "up"],
            ["link", "set", "v0", "up"],
            ["route", "add", "default", "via", "10.99.0.1", "dev", "v0"],
        ):
            subprocess.run(
                [nsenter, "-t", str(waiter.pid), "-n", ip, *args], check=True, timeout=30
            )
        result = json.loads(read_line(waiter.stdout, "the waiting process", wait=45))
        assert result["satisfied"], result
        assert result["reason"] == "connected: v0 (10.99.0.2) is up with a default route"
        assert time.monotonic() - started < 45
        assert result["elapsed"] < 55  # well before the 60 s bound
        assert waiter.wait(timeout=30) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        assert waiter.stdout is not None
        waiter.stdout.close()


@needs_netns
def test_a_network_that_never_comes_is_unsatisfied_at_the_bound(tmp_path: Path) -> None:
    waiter = _start_waiter(tmp_path, timeout=1.5, pause=0.2)
    try:
        assert waiter.stdout is not None
        read_line(waiter.stdout, "the waiting process")
        result = json.loads(read_line(waiter.stdout, "the waiting process", wait=30))
        assert result["satisfied"] is False
        assert result["reason"] == "not connected: no network interface other than loopback is up"
        assert 1.5 <= result["elapsed"] < 1.5 + 10
        assert waiter.wait(timeout=30) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        assert waiter.stdout is not None
        waiter.stdout.close()
