"""Fixtures of the network checker's tests: a clean configuration, and a private system bus
with a NetworkManager stand-in."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reachability_helpers import FakeNetworkManager, PrivateBus

import lamplighter_reachability
from lamplighter_reachability.networkmanager import NM_BUS_NAME


@pytest.fixture(autouse=True)
def clean_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No configuration from the environment or an earlier test, and no system bus unless
    a test publishes one."""
    for name in ("LAMPLIGHTER_REACHABILITY_PROBE", "LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT",
                 "LAMPLIGHTER_REACHABILITY_UNKNOWN", "LAMPLIGHTER_DISABLE_PLUGINS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")
    lamplighter_reachability.configure()
    yield
    monkeypatch.undo()  # a test may leave an invalid variable, which configure() would read
    lamplighter_reachability.configure()


@pytest.fixture
def private_bus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PrivateBus]:
    """A private bus as the system bus, with nothing on it yet."""
    pytest.importorskip("jeepney")
    if not sys.platform.startswith("linux"):
        pytest.skip("NetworkManager is Linux")
    bus = PrivateBus(tmp_path, monkeypatch)
    try:
        yield bus
    finally:
        bus.close()


@pytest.fixture
def fake_nm(private_bus: PrivateBus) -> FakeNetworkManager:
    """NetworkManager on the private system bus, with no properties yet."""
    return private_bus.publish(NM_BUS_NAME)
