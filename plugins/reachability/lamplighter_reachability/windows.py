"""Windows: the connection's cost from the Network List Manager (``INetworkCostManager``).

``INetworkCostManager::GetCost`` gives the cost of the machine's connections as
``NLM_CONNECTION_COST`` flags: ``UNRESTRICTED`` is unmetered, ``FIXED`` and ``VARIABLE`` are
metered, ``ROAMING`` says roaming, and 0 means Windows does not know. It is called through
``ctypes`` and COM, with no extra package. Windows only; elsewhere it reports itself
unavailable.
"""

from __future__ import annotations

import sys

from lamplighter_reachability.state import Reading

__all__ = ["cost_readings", "read_connection_cost"]

NLM_CONNECTION_COST_UNKNOWN = 0x0
NLM_CONNECTION_COST_UNRESTRICTED = 0x1
NLM_CONNECTION_COST_FIXED = 0x2
NLM_CONNECTION_COST_VARIABLE = 0x4
NLM_CONNECTION_COST_OVERDATALIMIT = 0x10000
NLM_CONNECTION_COST_CONGESTED = 0x20000
NLM_CONNECTION_COST_ROAMING = 0x40000
NLM_CONNECTION_COST_APPROACHINGDATALIMIT = 0x80000

_FLAG_NAMES = (
    (NLM_CONNECTION_COST_UNRESTRICTED, "unrestricted"),
    (NLM_CONNECTION_COST_FIXED, "fixed"),
    (NLM_CONNECTION_COST_VARIABLE, "variable"),
    (NLM_CONNECTION_COST_OVERDATALIMIT, "over data limit"),
    (NLM_CONNECTION_COST_CONGESTED, "congested"),
    (NLM_CONNECTION_COST_ROAMING, "roaming"),
    (NLM_CONNECTION_COST_APPROACHINGDATALIMIT, "approaching data limit"),
)

# {DCB00C01-570F-4A9B-8D69-199FDBA5723B} and {DCB00008-570F-4A9B-8D69-199FDBA5723B}
_CLSID_NETWORK_LIST_MANAGER = "{DCB00C01-570F-4A9B-8D69-199FDBA5723B}"
_IID_INETWORK_COST_MANAGER = "{DCB00008-570F-4A9B-8D69-199FDBA5723B}"
_CLSCTX_ALL = 0x17
_RPC_E_CHANGED_MODE = -2147417850  # 0x80010106: COM is already set up differently here


class CostUnavailable(Exception):
    """The cost cannot be read; the message says why."""


def cost_readings(cost: int) -> tuple[Reading, Reading]:
    """(metered, roaming) from ``NLM_CONNECTION_COST`` flags."""
    if cost == NLM_CONNECTION_COST_UNKNOWN:
        unknown = Reading(None, "Windows does not know the connection's cost (cost unknown)")
        return unknown, unknown
    names = ", ".join(name for flag, name in _FLAG_NAMES if cost & flag) or hex(cost)
    if cost & NLM_CONNECTION_COST_UNRESTRICTED:
        metered = Reading(False, f"not metered (Windows connection cost: {names})")
    elif cost & (NLM_CONNECTION_COST_FIXED | NLM_CONNECTION_COST_VARIABLE):
        metered = Reading(True, f"metered (Windows connection cost: {names})")
    else:
        metered = Reading(None, f"Windows reports the connection cost {names}, no cost type")
    if cost & NLM_CONNECTION_COST_ROAMING:
        roaming = Reading(True, f"roaming (Windows connection cost: {names})")
    else:
        roaming = Reading(False, f"not roaming (Windows connection cost: {names})")
    return metered, roaming


def read_connection_cost() -> int:
    """The ``NLM_CONNECTION_COST`` flags of the machine's connections.

    Raises:
        CostUnavailable: not on Windows, or COM refused; the message says why.
    """
    if sys.platform != "win32":
        raise CostUnavailable("the Network List Manager exists only on Windows")
    import ctypes
    from ctypes import wintypes

    class GUID(ctypes.Structure):
        _fields_ = (
            ("Data1", wintypes.DWORD),
            ("Data2", wintypes.WORD),
            ("Data3", wintypes.WORD),
            ("Data4", ctypes.c_ubyte * 8),
        )

    ole32 = ctypes.WinDLL("ole32")
    ole32.CoInitializeEx.argtypes = [ctypes.c_void_p, wintypes.DWORD]
    ole32.CoInitializeEx.restype = ctypes.c_long
    ole32.CLSIDFromString.argtypes = [wintypes.LPCWSTR, ctypes.POINTER(GUID)]
    ole32.CLSIDFromString.restype = ctypes.c_long
    ole32.CoCreateInstance.argtypes = [
        ctypes.POINTER(GUID),
        ctypes.c_void_p,
        wintypes.DWORD,
        ctypes.POINTER(GUID),
        ctypes.POINTER(ctypes.c_void_p),
    ]
    ole32.CoCreateInstance.restype = ctypes.c_long
    ole32.CoUninitialize.argtypes = []
    ole32.CoUninitialize.restype = None

    clsid, iid = GUID(), GUID()
    ole32.CLSIDFromString(_CLSID_NETWORK_LIST_MANAGER, ctypes.byref(clsid))
    ole32.CLSIDFromString(_IID_INETWORK_COST_MANAGER, ctypes.byref(iid))
    status = ole32.CoInitializeEx(None, 0)  # COINIT_MULTITHREADED
    initialized = status >= 0
    if not initialized and status != _RPC_E_CHANGED_MODE:
        raise CostUnavailable(f"CoInitializeEx failed (HRESULT {status & 0xFFFFFFFF:#010x})")
    try:
        manager = ctypes.c_void_p()
        status = ole32.CoCreateInstance(
            ctypes.byref(clsid), None, _CLSCTX_ALL, ctypes.byref(iid), ctypes.byref(manager)
        )
        if status < 0 or not manager:
            raise CostUnavailable(
                f"the Network List Manager is not available (HRESULT {status & 0xFFFFFFFF:#010x})"
            )
        vtable = ctypes.cast(manager, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p))).contents
        release = ctypes.WINFUNCTYPE(wintypes.ULONG, ctypes.c_void_p)(vtable[2])
        get_cost = ctypes.WINFUNCTYPE(
            ctypes.c_long, ctypes.c_void_p, ctypes.POINTER(wintypes.DWORD), ctypes.c_void_p
        )(vtable[3])
        try:
            cost = wintypes.DWORD()
            status = get_cost(manager, ctypes.byref(cost), None)
            if status < 0:
                raise CostUnavailable(
                    f"INetworkCostManager.GetCost failed (HRESULT {status & 0xFFFFFFFF:#010x})"
                )
            return int(cost.value)
        finally:
            release(manager)
    finally:
        if initialized:
            ole32.CoUninitialize()


def read_windows(*, metered: bool, roaming: bool) -> tuple[Reading | None, Reading | None]:
    """(metered, roaming) as asked, each None when not asked. Never raises for a failure
    of the platform."""
    if not (metered or roaming):
        return None, None
    try:
        cost = read_connection_cost()
    except CostUnavailable as exc:
        unknown = Reading(None, str(exc))
        return (unknown if metered else None), (unknown if roaming else None)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        unknown = Reading(None, f"reading the connection cost failed ({text})")
        return (unknown if metered else None), (unknown if roaming else None)
    cost_reading, roaming_reading = cost_readings(cost)
    return (cost_reading if metered else None), (roaming_reading if roaming else None)
