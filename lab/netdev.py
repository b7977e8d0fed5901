"""Network-namespace and veth helpers: the topologies of the lab, PTF, the demos and the test suites.

Everything goes through the ``ip`` and ``ethtool`` commands (iproute2 / ethtool packages).
A :class:`Topology` is a context manager that remembers what it created and removes it on
exit, also when the body raised. Names are unique per process and embed the owner's PID,
so parallel runs do not collide and :func:`cleanup_stale` can remove what a killed run left
behind without touching the resources of a run that is still alive.

Name format (interfaces are limited to 15 characters by the kernel)::

    <prefix><pid, 5 base-36 digits><serial, 2 base-36 digits><role>
    e.g. p4s00ab30a  (prefix "p4s", pid 0x...; role "a"/"b" for veth ends, "n" for netns)

Operations that need privileges raise :class:`NetdevUnavailable` with the kernel's reason
when it refuses (not root, no CAP_NET_ADMIN, no netns support), so test suites can
``pytest.skip(str(exc))``; :func:`require_netns` probes once and caches the answer.

Offloads: :func:`disable_offloads` turns off every checksum/segmentation/VLAN offload the
device lets us change, so that frames on the wire carry real checksums, are never larger than
the MTU (no GSO/GRO super-frames reaching raw sockets) and carry their VLAN tags in-band.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PREFIX",
    "NetdevError",
    "NetdevUnavailable",
    "Topology",
    "VethPair",
    "cleanup_stale",
    "disable_offloads",
    "link_exists",
    "list_netns",
    "netns_socket",
    "offload_features",
    "require_netns",
    "set_ipv6",
    "run",
]

DEFAULT_PREFIX = "p4s"
IFNAMSIZ = 15

#: ethtool -K names to turn off, in order. Devices refuse the ones they do not have
#: ("fixed"); that is fine, each is tried on its own.
OFFLOADS_OFF = (
    "rx", "tx", "sg", "tso", "gso", "gro", "lro", "ufo", "rx-gro-hw", "rx-gro-list",
    "rx-udp-gro-forwarding", "tx-udp-segmentation", "rxvlan", "txvlan", "rx-vlan-stag-hw-parse",
    "tx-vlan-stag-hw-insert",
)

#: ethtool -k feature names that must read "off" afterwards (where not fixed).
OFFLOADS_VERIFY = (
    "rx-checksumming", "tx-checksumming", "scatter-gather", "tcp-segmentation-offload",
    "generic-segmentation-offload", "generic-receive-offload", "large-receive-offload",
    "rx-vlan-offload", "tx-vlan-offload",
)


class NetdevError(RuntimeError):
    """A command failed for a reason other than lack of privilege."""

    def __init__(self, msg: str, *, cmd: Sequence[str] = (), stderr: str = "") -> None:
        super().__init__(msg)
        self.cmd = list(cmd)
        self.stderr = stderr


class NetdevUnavailable(NetdevError):
    """The environment refuses: not root, no CAP_NET_ADMIN, no netns/veth, tool missing."""


_REFUSAL_MARKERS = (
    "operation not permitted", "permission denied", "cannot open netlink socket",
    "rtnetlink answers: operation not supported", "unknown device type", "are you root",
)


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        raise NetdevUnavailable(f"{name!r} not found (install {'iproute2' if name == 'ip' else name})")
    return path


def run(cmd: Sequence[str], *, netns: str | None = None, check: bool = True,
        timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (optionally inside ``netns``); raise NetdevError/NetdevUnavailable on failure."""
    full = list(cmd)
    if full and full[0] in ("ip", "ethtool", "sysctl"):
        full[0] = _tool(full[0])
    if netns is not None:
        full = [_tool("ip"), "netns", "exec", netns, *full]
    log.debug("run: %s", " ".join(full))
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise NetdevUnavailable(f"cannot run {full[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        msg = f"{' '.join(full)} failed (exit {proc.returncode}): {err}"
        if os.geteuid() != 0 or any(m in err.lower() for m in _REFUSAL_MARKERS):
            raise NetdevUnavailable(msg, cmd=full, stderr=err)
        raise NetdevError(msg, cmd=full, stderr=err)
    return proc


# --- naming ---------------------------------------------------------------------------------------

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_serial = itertools.count()
_serial_lock = threading.Lock()


def _b36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def _check_prefix(prefix: str) -> None:
    if not (1 <= len(prefix) <= 6) or not prefix.isalnum() or not prefix.islower():
        raise ValueError(f"prefix must be 1-6 lowercase alphanumerics, got {prefix!r}")


def _new_stem(prefix: str) -> str:
    _check_prefix(prefix)
    with _serial_lock:
        n = next(_serial)
    return f"{prefix}{_b36(os.getpid(), 5)}{_b36(n % 1296, 2)}"


def _owner_pid(name: str, prefix: str) -> int | None:
    field_ = name[len(prefix):len(prefix) + 5]
    if not name.startswith(prefix) or len(field_) != 5 or any(c not in _B36 for c in field_):
        return None
    return int(field_, 36)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user's counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited process its parent has not reaped yet (a zombie) is not alive: an orphaned lab's
    # new parent may reap late, or never where no init reaps.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


# --- queries --------------------------------------------------------------------------------------

def list_netns() -> list[str]:
    proc = run(["ip", "-j", "netns", "list"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    return [e["name"] for e in json.loads(proc.stdout)]


def list_links(netns: str | None = None) -> list[str]:
    proc = run(["ip", "-j", "link", "show"], netns=netns)
    return [e["ifname"] for e in json.loads(proc.stdout or "[]")]


def link_exists(ifname: str, netns: str | None = None) -> bool:
    return run(["ip", "link", "show", "dev", ifname], netns=netns, check=False).returncode == 0


def offload_features(ifname: str, netns: str | None = None) -> dict[str, tuple[bool, bool]]:
    """``ethtool -k``: feature name -> (on, fixed)."""
    out = run(["ethtool", "-k", ifname], netns=netns).stdout
    feats: dict[str, tuple[bool, bool]] = {}
    for line in out.splitlines()[1:]:
        name, sep, rest = line.strip().partition(":")
        if not sep:
            continue
        rest = rest.strip()
        feats[name] = (rest.startswith("on"), "[fixed]" in rest)
    return feats


def disable_offloads(ifname: str, netns: str | None = None) -> list[str]:
    """Turn off every offload of ``ifname`` we can; return the OFFLOADS_VERIFY names still on.

    Fixed features that are on (a device that cannot do without them) are reported, not
    raised: the caller decides whether that matters.
    """
    for feat in OFFLOADS_OFF:
        # One call per feature: ethtool fails the whole call when one name is unknown.
        run(["ethtool", "-K", ifname, feat, "off"], netns=netns, check=False)
    feats = offload_features(ifname, netns)
    still_on = [f for f in OFFLOADS_VERIFY if feats.get(f, (False, False))[0]]
    if still_on:
        log.warning("%s: offloads still on (fixed by the device?): %s", ifname, ", ".join(still_on))
    return still_on


def set_ipv6(ifname: str, enabled: bool, netns: str | None = None) -> None:
    """Enable or disable IPv6 on one interface (net.ipv6.conf.<if>.disable_ipv6)."""
    key = f"net.ipv6.conf.{ifname.replace('.', '/')}.disable_ipv6"
    run(["sysctl", "-qw", f"{key}={0 if enabled else 1}"], netns=netns)


# --- probing --------------------------------------------------------------------------------------

_probe_lock = threading.Lock()
_probe_result: str | None | bool = False  # False: not probed; None: fine; str: reason


def require_netns() -> None:
    """Raise NetdevUnavailable (with the reason) unless we may create netns and veth pairs."""
    global _probe_result
    with _probe_lock:
        if _probe_result is False:
            _probe_result = _probe()
        reason = _probe_result
    if reason is not None:
        raise NetdevUnavailable(reason)


def _probe() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces need root (euid is {os.geteuid()})"
    try:
        _tool("ip")
        _tool("ethtool")
        with Topology(prefix=DEFAULT_PREFIX) as topo:
            ns = topo.add_netns()
            topo.add_veth(ns_b=ns)
    except NetdevError as exc:
        return f"kernel refused netns/veth: {exc}"
    return None


# --- topology -------------------------------------------------------------------------------------

@dataclass
class VethPair:
    a: str
    b: str
    ns_a: str | None = None
    ns_b: str | None = None


@dataclass
class _Made:
    netns: list[str] = field(default_factory=list)
    links: list[tuple[str, str | None]] = field(default_factory=list)  # (ifname, netns)


class Topology(contextlib.AbstractContextManager["Topology"]):
    """Builds namespaces and links and removes them all on exit (or on ``close()``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        _check_prefix(prefix)
        self.prefix = prefix
        self._made = _Made()
        self._closed = False

    # naming
    def _stem(self) -> str:
        return _new_stem(self.prefix)

    # namespaces
    def add_netns(self, name: str | None = None, *, loopback_up: bool = True) -> str:
        name = name or self._stem() + "n"
        run(["ip", "netns", "add", name])
        self._made.netns.append(name)
        if loopback_up:
            run(["ip", "link", "set", "lo", "up"], netns=name)
        return name

    # links
    def add_veth(self, a: str | None = None, b: str | None = None, *, ns_a: str | None = None,
                 ns_b: str | None = None, mtu: int | None = None, up: bool = True,
                 offloads_off: bool = True, ipv6: bool = False, mac_a: str | None = None,
                 mac_b: str | None = None) -> VethPair:
        """Create a veth pair; either end may be moved into a namespace.

        The pair is created in the root namespace and ends are moved afterwards, so the
        names must be free in the root namespace too. Unless ``ipv6``, IPv6 is disabled on
        both ends so the kernel sends no router/neighbour solicitations or MLD reports that
        tests would have to filter out.
        """
        if a is None or b is None:
            stem = self._stem()
            a = a or stem + "a"
            b = b or stem + "b"
        for n in (a, b):
            if len(n) > IFNAMSIZ:
                raise ValueError(f"interface name {n!r} longer than {IFNAMSIZ}")
        run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        # Remember the root-side end: deleting either end deletes the pair.
        self._made.links.append((a, None))
        try:
            if ns_a is not None:
                run(["ip", "link", "set", a, "netns", ns_a])
                self._made.links[-1] = (a, ns_a)
            if ns_b is not None:
                run(["ip", "link", "set", b, "netns", ns_b])
            for ifname, ns, mac in ((a, ns_a, mac_a), (b, ns_b, mac_b)):
                if mac:
                    self.set_mac(ifname, mac, netns=ns)
                if mtu:
                    self.set_mtu(ifname, mtu, netns=ns)
                if offloads_off:
                    disable_offloads(ifname, netns=ns)
                if not ipv6:
                    set_ipv6(ifname, False, netns=ns)
                if up:
                    self.link_up(ifname, netns=ns)
        except BaseException:
            self._delete_link(a, self._made.links[-1][1])
            self._made.links.pop()
            raise
        return VethPair(a, b, ns_a, ns_b)

    def add_tap(self, name: str | None = None, *, mode: str = "tap", netns: str | None = None,
                up: bool = True) -> str:
        """Create a persistent TAP (``mode="tap"``) or TUN (``mode="tun"``) device."""
        name = name or self._stem() + ("t" if mode == "tap" else "u")
        run(["ip", "tuntap", "add", "dev", name, "mode", mode], netns=netns)
        self._made.links.append((name, netns))
        if up:
            self.link_up(name, netns=netns)
        return name

    def delete_link(self, ifname: str, netns: str | None = None) -> None:
        """Delete a link now (e.g. to simulate a port vanishing); forget it if it was ours."""
        run(["ip", "link", "del", "dev", ifname], netns=netns)
        self._made.links = [(n, ns) for n, ns in self._made.links if n != ifname]

    # addressing and state
    def link_up(self, ifname: str, netns: str | None = None) -> None:
        run(["ip", "link", "set", "dev", ifname, "up"], netns=netns)

    def link_down(self, ifname: str, netns: str | None = None) -> None:
        run(["ip", "link", "set", "dev", ifname, "down"], netns=netns)

    def set_mac(self, ifname: str, mac: str, netns: str | None = None) -> None:
        run(["ip", "link", "set", "dev", ifname, "address", mac], netns=netns)

    def set_mtu(self, ifname: str, mtu: int, netns: str | None = None) -> None:
        run(["ip", "link", "set", "dev", ifname, "mtu", str(mtu)], netns=netns)

    def add_address(self, ifname: str, cidr: str, netns: str | None = None) -> None:
        run(["ip", "addr", "add", cidr, "dev", ifname], netns=netns)

    def add_route(self, dest: str, *, via: str | None = None, dev: str | None = None,
                  netns: str | None = None) -> None:
        cmd = ["ip", "route", "replace", dest]
        if via:
            cmd += ["via", via]
        if dev:
            cmd += ["dev", dev]
        run(cmd, netns=netns)

    def add_neighbor(self, ip: str, mac: str, dev: str, netns: str | None = None) -> None:
        run(["ip", "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent"], netns=netns)

    # commands
    def exec(self, netns: str | None, cmd: Sequence[str], *, check: bool = True,
             timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``netns`` (root namespace if None) and wait for it."""
        return run(cmd, netns=netns, check=check, timeout=timeout)

    def popen(self, netns: str | None, cmd: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """Start a command inside ``netns``; the caller owns (and must end) the process."""
        full = [_tool("ip"), "netns", "exec", netns, *cmd] if netns else list(cmd)
        return subprocess.Popen(full, **kwargs)  # type: ignore[call-overload]

    # teardown
    def _delete_link(self, ifname: str, netns: str | None) -> None:
        if netns is not None and netns in self._made.netns:
            return  # goes away with its namespace
        proc = run(["ip", "link", "del", "dev", ifname], netns=netns, check=False)
        if proc.returncode != 0 and link_exists(ifname, netns):
            log.warning("could not delete %s: %s", ifname, proc.stderr.strip())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for ifname, ns in reversed(self._made.links):
            try:
                self._delete_link(ifname, ns)
            except NetdevError as exc:  # keep going: remove as much as we can
                errors.append(str(exc))
        for ns in reversed(self._made.netns):
            proc = run(["ip", "netns", "del", ns], check=False)
            if proc.returncode != 0 and ns in list_netns():
                errors.append(proc.stderr.strip())
        self._made = _Made()
        if errors:
            log.warning("topology cleanup left things behind: %s", "; ".join(errors))

    def __exit__(self, *exc: object) -> None:
        self.close()


def cleanup_stale(prefix: str = DEFAULT_PREFIX, *, force: bool = False) -> list[str]:
    """Remove namespaces and root-namespace links named by a dead process with ``prefix``.

    Resources whose owner PID is alive are kept unless ``force``. Returns what was removed.
    Note that a prefix also matches longer prefixes' names whose PID field happens to parse;
    give each suite its own prefix of the same length to keep them apart.
    """
    _check_prefix(prefix)
    removed: list[str] = []

    def stale(name: str) -> bool:
        pid = _owner_pid(name, prefix)
        if pid is None:
            return False
        return force or (pid != os.getpid() and not pid_alive(pid))

    for name in list_links():
        base = name.split("@", 1)[0]
        if stale(base):
            proc = run(["ip", "link", "del", "dev", base], check=False)
            if proc.returncode == 0 or not link_exists(base):
                removed.append(base)
    for ns in list_netns():
        if stale(ns):
            proc = run(["ip", "netns", "del", ns], check=False)
            if proc.returncode == 0:
                removed.append(ns)
    if removed:
        log.info("removed stale network resources: %s", ", ".join(removed))
    return removed


_CLONE_NEWNET = 0x40000000
_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    # os.setns only exists from Python 3.12; call libc directly.
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def netns_socket(netns: str) -> Iterator[None]:
    """Temporarily switch the *calling thread* into ``netns`` (for opening sockets there).

    A socket keeps the namespace it was created in, so tests can open a raw socket inside a
    namespace and use it from the root namespace afterwards.
    """
    path = f"/run/netns/{netns}"
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        os.close(own)
        raise NetdevError(f"no namespace {netns}: {exc}") from exc
    try:
        try:
            _setns(target)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EINVAL):
                raise NetdevUnavailable(f"setns into {netns}: {exc}") from exc
            raise
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
