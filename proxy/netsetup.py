"""Policy routing for transparent interception: everything that arrives on the switch-facing
interface is delivered to local sockets, whatever its destination address.

    ip rule add iif <ifname> lookup <table>
    ip route replace local 0.0.0.0/0 dev lo table <table>

With that, the SYN the switch sends from the client's address to the server's reaches the proxy's
IP_TRANSPARENT listener, and the server's replies to the client's address reach the proxy's
upstream socket. Both helpers are idempotent; ``netns`` runs them in a named namespace.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence

__all__ = ["NetSetupError", "rules_for_table", "setup_namespace", "teardown_namespace"]

log = logging.getLogger("p4splice.proxy.netsetup")

DEFAULT_TABLE = 100


class NetSetupError(RuntimeError):
    """An ``ip`` command failed; the message carries the kernel's reason."""


def _ip(args: Sequence[str], netns: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    cmd = [ip, *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
    if check and proc.returncode != 0:
        raise NetSetupError(f"{' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def rules_for_table(table: int, netns: str | None = None) -> list[dict[str, object]]:
    """The policy-routing rules that look up ``table``."""
    rules = json.loads(_ip(["-j", "rule", "show"], netns).stdout or "[]")
    return [r for r in rules if str(r.get("table")) == str(table)]


def _delete_rules(ifname: str, table: int, netns: str | None) -> None:
    # A rule may have been added more than once (by hand or a killed run): remove every copy.
    for _ in range(64):
        if _ip(["rule", "del", "iif", ifname, "lookup", str(table)], netns, check=False).returncode != 0:
            return


def setup_namespace(ifname: str, table: int = DEFAULT_TABLE, netns: str | None = None) -> None:
    """Deliver everything arriving on ``ifname`` locally (the transparent proxy's sockets take it).

    May be called for several interfaces with the same table (a proxy host acting as a router
    between client and server needs it on both of its interfaces)."""
    if table in (253, 254, 255):
        raise ValueError(f"table {table} is one of the kernel's own tables")
    _delete_rules(ifname, table, netns)
    _ip(["rule", "add", "iif", ifname, "lookup", str(table)], netns)
    _ip(["route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", str(table)], netns)
    log.info("policy routing: iif %s -> table %d (local delivery)%s", ifname, table, f" in {netns}" if netns else "")


def teardown_namespace(ifname: str, table: int = DEFAULT_TABLE, netns: str | None = None) -> None:
    """Undo :func:`setup_namespace` for ``ifname``; the table's route goes with its last rule."""
    _delete_rules(ifname, table, netns)
    if not rules_for_table(table, netns):
        _ip(["route", "flush", "table", str(table)], netns, check=False)
    log.info("policy routing for %s removed%s", ifname, f" in {netns}" if netns else "")
