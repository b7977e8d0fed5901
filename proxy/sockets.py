"""Socket plumbing for a transparent proxy: IP_TRANSPARENT listeners and upstream sockets,
kernel queue depths (unread and unacknowledged bytes), abortive close, and readiness waits
that can be cancelled without losing data.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import socket
import struct
import termios

__all__ = [
    "abort",
    "transparent_listener",
    "transparent_upstream",
    "unacked",
    "unread",
    "wait_readable",
    "wait_writable",
]

IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
# SIOCINQ is FIONREAD and SIOCOUTQ is TIOCOUTQ on Linux; for TCP, SIOCOUTQ counts bytes the
# peer has not acknowledged yet (sent or not), which is what the splice must wait out.
SIOCINQ = termios.FIONREAD
SIOCOUTQ = getattr(termios, "TIOCOUTQ", 0x5411)


def _transparent(sock: socket.socket) -> None:
    # Lets the socket use an address that is not assigned here: the listener answers SYNs sent
    # to the server's address, the upstream socket sends from the client's.
    sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)


def transparent_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket that accepts connections addressed to any host (with the
    namespace's policy routing delivering them here); accepted sockets keep the real server
    address as their local address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _transparent(sock)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def transparent_upstream(client: tuple[str, int]) -> socket.socket:
    """A non-blocking socket bound to the client's own address and port, ready to connect to
    the server, so that the server sees the client and not the proxy."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        _transparent(sock)
        # A previous connection of this client port may linger in TIME_WAIT on our side.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(client)
        sock.setblocking(False)
        reset_if_we_die(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def _ioctl_int(sock: socket.socket, request: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), request, buf, True)
    return buf[0]


def unread(sock: socket.socket) -> int:
    """Bytes the kernel has received (and acknowledged) that we have not read yet."""
    return _ioctl_int(sock, SIOCINQ)


def unacked(sock: socket.socket) -> int:
    """Bytes we have written that the peer has not acknowledged yet (sent or still queued)."""
    return _ioctl_int(sock, SIOCOUTQ)


_LINGER_RESET = struct.pack("ii", 1, 0)
_LINGER_DEFAULT = struct.pack("ii", 0, 0)


def reset_if_we_die(sock: socket.socket) -> None:
    """Arm SO_LINGER 0 for the socket's whole life. If the proxy process dies (SIGKILL, a
    crash), its kernel then ends the leg with an RST; with the default it would send a FIN,
    which the switch carries to the peer as a clean end of a stream the proxy had not finished
    relaying -- a silently truncated transfer instead of a visible reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def disarm_reset(sock: socket.socket) -> None:
    """Back to the default close (FIN exchange, retransmitted if lost)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_DEFAULT)


def close_gracefully(sock: socket.socket) -> None:
    """An orderly close after both directions ended: disarm reset_if_we_die first, so a FIN
    still in flight is retransmitted rather than overtaken by an RST."""
    if sock.fileno() < 0:
        return
    disarm_reset(sock)
    sock.close()


def abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel drops whatever is queued and sends one RST instead of
    a FIN exchange, so the socket leaves nothing behind that could still reach a peer."""
    if sock.fileno() < 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


async def _wait(sock: socket.socket, writable: bool) -> None:
    # Our own readiness wait instead of loop.sock_recv(): cancelling it can never drop bytes
    # that were already taken from the kernel, because nothing is read until it returns.
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if writable:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await future
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def wait_readable(sock: socket.socket) -> None:
    await _wait(sock, writable=False)


async def wait_writable(sock: socket.socket) -> None:
    await _wait(sock, writable=True)
