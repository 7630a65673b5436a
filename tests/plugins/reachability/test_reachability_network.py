"""The network checker on real network states: this machine, network namespaces made by
the tests, and a TCP server the tests start on 127.0.0.1 for the probe."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from reachability_helpers import needs_netns, run_python

from lamplighter.model import Constraints, NetworkType
from lamplighter_reachability import ReachabilitySettings, configure
from lamplighter_reachability.checker import ReachabilityChecker
from lamplighter_reachability.config import Probe
from lamplighter_reachability.connectivity import read_connectivity

CONNECTED = Constraints(network=NetworkType.CONNECTED)

# Prints the verdict on the network constraint ``sys.argv[1]`` as JSON.
CHECK = textwrap.dedent(
    """
    import json, sys
    from lamplighter.model import Constraints, NetworkType
    from lamplighter_reachability.checker import ReachabilityChecker
    (verdict,) = ReachabilityChecker().check(Constraints(network=NetworkType[sys.argv[1]]))
    print(json.dumps({"satisfied": verdict.satisfied, "known": verdict.known,
                      "reason": verdict.reason}))
    """
)


def _check_in_process(network: str, tmp_path: Path, *, isolated: bool, setup: str = "") -> dict:
    code = CHECK.replace("import json, sys", f"import json, sys\n{setup}")
    done = run_python(
        f"import sys; sys.argv[1:] = [{network!r}]\n{code}", tmp_path, isolated=isolated
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)
    return result


def _host_connected() -> None:
    state = read_connectivity()
    if not state.connected:
        pytest.skip(f"this machine has no network connection here ({state.description})")


# --------------------------------------------------------------------------------------------
# CONNECTED: this machine, and a namespace with nothing but a loopback that is down
# --------------------------------------------------------------------------------------------


def test_this_machine_is_connected(tmp_path: Path) -> None:
    _host_connected()
    (verdict,) = ReachabilityChecker().check(CONNECTED)
    assert (verdict.constraint, verdict.satisfied, verdict.known) == ("network", True, True)
    assert verdict.reason.startswith("connected: ")
    assert verdict.reason.endswith(" up with a default route")
    # The same in a fresh process, as the OS would launch it.
    result = _check_in_process("CONNECTED", tmp_path, isolated=False)
    assert result["satisfied"] and result["known"]


@needs_netns
@pytest.mark.parametrize("network", ["CONNECTED", "UNMETERED", "METERED", "NOT_ROAMING"])
def test_an_empty_network_namespace_is_not_connected(network: str, tmp_path: Path) -> None:
    result = _check_in_process(network, tmp_path, isolated=True)
    assert result == {
        "satisfied": False,
        "known": True,
        "reason": "not connected: no network interface other than loopback is up",
    }


NETNS_SETUP = """
import subprocess
def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)
ip("link", "set", "lo", "up")
ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
ip("addr", "add", "10.99.0.2/24", "dev", "v0")
ip("link", "set", "v1", "up")
ip("link", "set", "v0", "up")
"""


@needs_netns
def test_a_loopback_that_is_up_is_still_not_a_connection(tmp_path: Path) -> None:
    setup = "import subprocess; subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)"
    result = _check_in_process("CONNECTED", tmp_path, isolated=True, setup=setup)
    assert result["reason"] == "not connected: no network interface other than loopback is up"


@needs_netns
def test_an_interface_without_a_default_route_is_not_a_connection(tmp_path: Path) -> None:
    result = _check_in_process("CONNECTED", tmp_path, isolated=True, setup=NETNS_SETUP)
    assert not result["satisfied"] and result["known"]
    assert result["reason"] == (
        "not connected: v0 (10.99.0.2) is up, but no default route leads through it"
    )


@needs_netns
def test_an_interface_with_a_default_route_is_a_connection(tmp_path: Path) -> None:
    setup = NETNS_SETUP + 'ip("route", "add", "default", "via", "10.99.0.1", "dev", "v0")\n'
    result = _check_in_process("CONNECTED", tmp_path, isolated=True, setup=setup)
    assert result == {
        "satisfied": True,
        "known": True,
        "reason": "connected: v0 (10.99.0.2) is up with a default route",
    }


# --------------------------------------------------------------------------------------------
# the probe, against servers on 127.0.0.1 only
# --------------------------------------------------------------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections (the kernel completes the
    handshake from the listen backlog)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_probe_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    _host_connected()
    attempts: list[object] = []
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: attempts.append(a) or pytest.fail("probed")
    )
    (verdict,) = ReachabilityChecker().check(CONNECTED)
    assert verdict.satisfied and attempts == []
    assert "TCP" not in verdict.reason


def test_an_open_port_satisfies_the_probe(listening_port: int) -> None:
    _host_connected()
    configure(probe=f"127.0.0.1:{listening_port}", probe_timeout=5)
    for network in (NetworkType.CONNECTED, NetworkType.METERED):
        (verdict,) = ReachabilityChecker().check(Constraints(network=network))
        # METERED: no system bus here, so the cost is unknown and counted as metered.
        assert verdict.satisfied and verdict.known is (network is NetworkType.CONNECTED)
        assert f", and 127.0.0.1:{listening_port} accepted a TCP connection in " in verdict.reason


def test_a_closed_port_fails_the_probe_with_the_reason(closed_port: int) -> None:
    _host_connected()
    settings = ReachabilitySettings(probe=Probe(host="127.0.0.1", port=closed_port))
    (verdict,) = ReachabilityChecker(settings).check(CONNECTED)
    assert (verdict.satisfied, verdict.known) == (False, True)
    assert verdict.reason.startswith("not connected: ")
    assert f", but 127.0.0.1:{closed_port} refused a TCP connection (ConnectionRefusedError" in (
        verdict.reason
    )


def test_the_probe_is_configured_through_the_environment_in_launched_processes(
    listening_port: int, closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host_connected()
    for port, satisfied in ((listening_port, True), (closed_port, False)):
        setup = f"import os\nos.environ['LAMPLIGHTER_REACHABILITY_PROBE'] = '127.0.0.1:{port}'\n"
        result = _check_in_process("CONNECTED", tmp_path, isolated=False, setup=setup)
        assert result["satisfied"] is satisfied, result
        assert f"127.0.0.1:{port}" in result["reason"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="namespaces are Linux")
@needs_netns
def test_no_probe_is_tried_without_a_connection(tmp_path: Path) -> None:
    # A probe of a port on the namespace's own loopback would succeed if it were tried.
    setup = (
        "import os, socket, subprocess\n"
        "subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "os.environ['LAMPLIGHTER_REACHABILITY_PROBE'] = f'127.0.0.1:{server.getsockname()[1]}'\n"
    )
    result = _check_in_process("CONNECTED", tmp_path, isolated=True, setup=setup)
    assert result["reason"] == "not connected: no network interface other than loopback is up"
