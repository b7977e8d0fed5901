"""HAProxy as the offload benchmark's baseline: the configuration text, finding the binary, and
running it in the lab's proxy-host namespace as a transparent proxy for a "VIP" range.

Why a VIP range and not the servers' own addresses: the switch routes by IPv4 destination only
(``p4src/include/routing.p4``), so to put a proxy that the controller does not steer into the path,
the clients must address something that the switch routes to the proxy port. The VIP range
(``10.0.250.0/24``, one address per server) gets one ``splicectl routes add`` to the proxy port;
in the proxy namespace a policy rule delivers what arrives on ``eth0`` for that range locally, and
HAProxy binds the VIP with ``transparent`` (IP_TRANSPARENT: the address is not assigned to any
interface). HAProxy then connects to the real server *from its own address*: the server's replies
are addressed to the proxy host, which the switch routes back to it.

``usesrc clientip`` (connect from the client's address, as splice-proxy does) would not work here:
the server's replies would be addressed to the client, and the switch -- routing by destination
only -- would hand them straight to the client, which never opened that connection. splice-proxy
can do it only because the controller installs per-flow entries that steer those replies to the
proxy port, and the baseline must not be a splice service (the controller would steer it).
"""

from __future__ import annotations

import shutil
import socket
import struct
from collections.abc import Sequence
from pathlib import Path

__all__ = ["HAPROXY_CANDIDATES", "VIP_NET", "VIP_TABLE", "command", "find_haproxy", "haproxy_config", "listening",
           "parse_proc_net_tcp", "parse_show_info", "policy_routing_commands", "show_info", "vip_for"]

VIP_NET = "10.0.250.0/24"
VIP_TABLE = 201  # the policy-routing table of the VIP rule (splice-proxy's lab table is 100)
HAPROXY_CANDIDATES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")


def vip_for(server_index: int, net: str = VIP_NET) -> str:
    """The VIP of server ``server_index`` (1-based): ``.j`` of the VIP /24."""
    if not 1 <= server_index <= 253:
        raise ValueError(f"server index {server_index} outside 1..253")
    base = net.split("/", 1)[0].rsplit(".", 1)[0]
    return f"{base}.{server_index}"


def find_haproxy() -> str | None:
    """The haproxy binary (PATH, then Debian's /usr/sbin, which a non-root PATH may lack)."""
    found = shutil.which("haproxy")
    if found:
        return found
    for path in HAPROXY_CANDIDATES:
        if Path(path).is_file():
            return path
    return None


def haproxy_config(listen: tuple[str, int], server: tuple[str, int], *, splice: bool, mode: str = "http",
                   nbthread: int = 1, maxconn: int = 4096, timeout_s: float = 300.0,
                   stats_socket: str | None = None) -> str:
    """A complete haproxy.cfg: one frontend bound transparently on ``listen``, one backend server.

    ``splice``: kernel splice() both ways (``option splice-request`` and ``splice-response``:
    forced, not left to ``splice-auto``'s heuristics); without it, ``nosplice`` in ``global``
    makes sure nothing splices. ``mode``: ``http`` (an L7 proxy that parses each request, as
    splice-proxy's inspect does; ``httpclose`` so that each connection carries one exchange, as the
    lab's protocol expects) or ``tcp`` (a byte relay). ``nbthread`` 1 by default: one event loop,
    like splice-proxy."""
    if mode not in ("http", "tcp"):
        raise ValueError(f"mode must be http or tcp, not {mode!r}")
    if nbthread < 1:
        raise ValueError("nbthread must be at least 1")
    timeout_ms = int(timeout_s * 1000)
    lines = ["global", f"    maxconn {maxconn}", f"    nbthread {nbthread}"]
    if not splice:
        lines.append("    nosplice")
    if stats_socket:
        lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    lines += ["", "defaults", f"    mode {mode}", "    timeout connect 5s", f"    timeout client {timeout_ms}ms",
              f"    timeout server {timeout_ms}ms"]
    if mode == "http":
        lines.append("    option httpclose")
    if splice:
        lines += ["    option splice-request", "    option splice-response"]
    else:
        lines += ["    no option splice-auto", "    no option splice-request", "    no option splice-response"]
    lines += ["", "frontend vip", f"    bind {listen[0]}:{listen[1]} transparent", "    default_backend servers",
              "", "backend servers", f"    server s1 {server[0]}:{server[1]}"]
    return "\n".join(lines) + "\n"


def policy_routing_commands(ifname: str, net: str = VIP_NET, table: int = VIP_TABLE) -> list[list[str]]:
    """``ip`` argument lists (run in the proxy namespace) that deliver what arrives on ``ifname``
    for ``net`` to local sockets -- only that range, independent of splice-proxy's own rule."""
    return [["rule", "del", "iif", ifname, "to", net, "lookup", str(table)],  # may fail: not there yet
            ["rule", "add", "iif", ifname, "to", net, "lookup", str(table)],
            ["route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", str(table)]]


def parse_proc_net_tcp(text: str) -> list[tuple[str, int, int]]:
    """``/proc/<pid>/net/tcp`` as (local address, local port, state) per socket (state 0x0A is LISTEN)."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1]:
            continue
        addr_hex, port_hex = fields[1].split(":")
        # The kernel prints the address as the u32 in host order (little-endian on x86/arm).
        addr = socket.inet_ntoa(struct.pack("=I", int(addr_hex, 16)))
        out.append((addr, int(port_hex, 16), int(fields[3], 16)))
    return out


def listening(pid: int, addr: tuple[str, int], proc_root: str = "/proc") -> bool:
    """Whether a socket listens on ``addr`` in the network namespace of process ``pid``."""
    try:
        text = Path(f"{proc_root}/{pid}/net/tcp").read_text()
    except OSError:
        return False
    return any((a, p, s) == (addr[0], addr[1], 0x0A) for a, p, s in parse_proc_net_tcp(text))


def show_info(stats_socket: str, timeout: float = 5.0) -> dict[str, str]:
    """``show info`` on HAProxy's stats socket, as a dict (e.g. ``PipesUsed``, ``PipesFree``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(stats_socket)
        sock.sendall(b"show info\n")
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
    return parse_show_info(buf.decode(errors="replace"))


def parse_show_info(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def command(haproxy: str, cfg: Path, netns_exec: Sequence[str]) -> list[str]:
    """The argv that runs ``haproxy`` in the foreground (``-db``: no daemon, so the pid we hold is
    HAProxy's own and SIGTERM stops it) under ``netns_exec`` (``ip netns exec NS``)."""
    return [*netns_exec, haproxy, "-db", "-f", str(cfg)]
