"""Switch ports that move frames as the bytes they are: raw-socket ports, in-memory ports, pcap.

A :class:`PortSet` owns the ports of one switch, runs one receive thread that waits on all of
them with epoll and hands every frame to ``on_frame(port_num, frame)``, and sends frames out by
port number. It knows nothing of P4.

Receive path of :class:`RawSocketPort` (AF_PACKET, SOCK_RAW, bound to one interface):

* Only frames coming *in* are delivered. The kernel also shows a packet socket every frame
  the interface transmits (pkttype PACKET_OUTGOING), ours included; those are filtered with
  PACKET_IGNORE_OUTGOING where the kernel has it, and by pkttype in any case.
* The kernel strips 802.1Q tags on receive, always, offloads or not, and reports them beside
  the frame (PACKET_AUXDATA). Like libpcap (and so BMv2) we put the tag back where it was,
  so programs see the frame as it was on the wire.
* Frames come through a receive ring shared with the kernel (PACKET_RX_RING, TPACKET_V2):
  no system call per frame, only per batch. A frame too big for a ring slot (2 KiB: jumbo
  frames, GSO super-frames) is also queued whole on the socket (PACKET_COPY_THRESH) and read
  from there in its turn. Where the kernel refuses a ring, frames are read from the socket.
* Frames of any length are delivered as they are, runts included; nothing is padded.
  Note that Linux will not *transmit* a frame shorter than 14 bytes on an Ethernet device
  (EINVAL; such a send is dropped and counted as a tx error). On a TUN device, which has no
  link-layer header, any length goes both ways.
* TUN devices: there is no Ethernet header; frames are the IP packets, passed on unchanged,
  as BMv2 does. The P4 program's parser then sees IP at offset 0.
* With segmentation/receive offloads on, the kernel may hand up frames larger than the MTU
  (GSO/GRO super-frames). The project switches offloads off on its veths
  (the lab's :func:`p4splice.lab.netdev.disable_offloads`); nothing is done about it here.
* An interface that is down is not brought up (BMv2 does not either); it is reported.

A port whose interface vanishes (ENODEV/ENXIO, or ENETDOWN with the interface gone) is taken
out of the set and reported through logging and ``on_port_down(port_num, reason)``; the other
ports carry on. A link that merely goes down is reported the same way but kept: frames flow
again when it comes back up.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import mmap
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

log = logging.getLogger(__name__)

__all__ = [
    "MemoryPort",
    "PcapDir",
    "PcapWriter",
    "Port",
    "PortGone",
    "PortLinkDown",
    "PortSet",
    "PortStats",
    "RawSocketPort",
    "read_pcap",
]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_COPY_THRESH = 7
PACKET_AUXDATA = 8
PACKET_VERSION = 10
TPACKET_V2 = 1
TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40

#: Largest frame we read: a 64 KiB IP packet plus Ethernet and two VLAN tags.
MAX_FRAME = 65535 + 14 + 8
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata (without trailing padding)
_CMSG_SPACE = socket.CMSG_SPACE(_AUX.size + 4)
_GONE_ERRNOS = (errno.ENODEV, errno.ENXIO)
# The receive ring: 2 KiB slots (an Ethernet frame of 1,518 bytes and the slot's headers),
# 4,096 of them (8 MiB, as the socket buffer the ring replaces).
RING_SLOT = 2048
RING_BLOCK = 1 << 16
RING_BLOCKS = 128
RING_SLOTS = RING_BLOCK // RING_SLOT * RING_BLOCKS
# struct tpacket2_hdr: status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid
_T2 = struct.Struct("=IIIHHIIHH")
_SLOT_PKTTYPE = 32 + 10  # sockaddr_ll follows the 32-byte header; sll_pkttype is its 11th byte
_TO_KERNEL = bytes(4)
_STATUS_LSB = 0 if sys.byteorder == "little" else 3  # low byte of tpacket_auxdata.tp_status
# a plain int: socket.MSG_TRUNC is an IntFlag, and ``flags & IntFlag`` runs enum code per frame
_MSG_TRUNC = int(socket.MSG_TRUNC)


def _tag(frame: bytes, tci: int, tpid: int) -> bytes:
    """``frame`` with the 802.1Q tag the kernel took off put back after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


class PortGone(OSError):
    """The port's interface no longer exists: the port is dead for good."""


class PortLinkDown(OSError):
    """The port's interface exists but its link is down; it may come back."""


class Port(Protocol):
    """What a PortSet needs of a port."""

    port_num: int
    name: str

    def fileno(self) -> int: ...

    def recv_batch(self, limit: int) -> list[bytes]:
        """Frames ready now (never blocks); raises PortGone / PortLinkDown."""
        ...

    def send(self, frame: bytes) -> None:
        """Transmit one frame; raises PortGone / PortLinkDown / OSError."""
        ...

    def close(self) -> None: ...


# --- raw socket port ----------------------------------------------------------------------------

class RawSocketPort:
    """A switch port on a Linux interface (veth, TAP, TUN, physical), via AF_PACKET SOCK_RAW.

    The socket lives in the network namespace of the thread that creates the port.
    """

    def __init__(self, port_num: int, ifname: str, *, rcvbuf: int = 8 << 20,
                 sndbuf: int = 4 << 20, ring: bool = True) -> None:
        self.port_num = port_num
        self.name = ifname
        # Protocol 0 at creation: the socket sees nothing until bound with ETH_P_ALL to this
        # one interface, so no frame of another interface slips in between.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._set_buf(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
            self._set_buf(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # kernel < 4.20: the pkttype check below does the job
            self._ring = self._map_ring(sock, ifname) if ring else None
            try:
                sock.bind((ifname, ETH_P_ALL))
            except OSError as exc:
                if exc.errno in _GONE_ERRNOS:
                    raise PortGone(exc.errno, f"no interface {ifname!r}") from exc
                raise
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        name, _proto, _pkttype, hatype, _addr = sock.getsockname()
        self.ifindex = socket.if_nametoindex(ifname) if name else -1
        self.hatype = hatype
        self._ethernet = hatype == ARPHRD_ETHER
        self._buf = bytearray(MAX_FRAME)
        self._view = memoryview(self._buf)
        self._pending: OSError | None = None
        self._slot = 0  # the next ring slot to look at
        self._copies: collections.deque[bytes] = collections.deque()  # whole frames read ahead of their slot
        if not self.is_up():
            log.warning("port %d: interface %s is down (not bringing it up)", port_num, ifname)

    @staticmethod
    def _map_ring(sock: socket.socket, ifname: str) -> mmap.mmap | None:
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("IIII", RING_BLOCK, RING_BLOCKS, RING_SLOT, RING_SLOTS))
            return mmap.mmap(sock.fileno(), RING_BLOCK * RING_BLOCKS, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            log.info("%s: no receive ring (%s): frames are read from the socket", ifname, exc.strerror)
            return None

    @staticmethod
    def _set_buf(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
        try:
            # Root may exceed net.core.[rw]mem_max; others get what the sysctl allows.
            sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)

    def fileno(self) -> int:
        return self._sock.fileno()

    def _flags(self) -> int:
        # SIOCGIFFLAGS through our own socket asks the socket's namespace, not the caller's.
        ifr = struct.pack("16sh22x", self.name.encode(), 0)
        res = fcntl.ioctl(self._sock.fileno(), SIOCGIFFLAGS, ifr)
        return struct.unpack("16sh22x", res)[1]

    def is_up(self) -> bool:
        try:
            return bool(self._flags() & IFF_UP)
        except OSError:
            return False

    def exists(self) -> bool:
        """Whether the interface we bound to is still there (same ifindex, same name)."""
        try:
            name = self._sock.getsockname()[0]
        except OSError:
            return False
        # After the device is unregistered the socket's ifindex is -1 and the name empty.
        return name == self.name

    def _error(self, exc: OSError, what: str) -> OSError:
        if exc.errno in _GONE_ERRNOS or not self.exists():
            return PortGone(exc.errno, f"interface {self.name} vanished ({what}: {exc.strerror})")
        if exc.errno == errno.ENETDOWN:
            return PortLinkDown(exc.errno, f"interface {self.name} is down ({what})")
        return exc

    def recv_batch(self, limit: int = 64) -> list[bytes]:
        if self._pending is not None:
            exc, self._pending = self._pending, None
            raise exc
        ring = self._ring
        if ring is None:
            return self._recv_socket(limit)
        frames: list[bytes] = []
        i, ethernet = self._slot, self._ethernet
        while len(frames) < limit:
            off = i * RING_SLOT
            status, length, snap, mac, _net, _sec, _nsec, tci, tpid = _T2.unpack_from(ring, off)
            if not status & TP_STATUS_USER:
                break
            if ring[off + _SLOT_PKTTYPE] == PACKET_OUTGOING:
                pass  # ours (a kernel without PACKET_IGNORE_OUTGOING); its copy, if any, the socket path drops too
            elif status & TP_STATUS_COPY:
                # too big for the slot: the whole frame is on the socket, in the same order
                if not self._copies:
                    try:
                        self._copies.extend(self._recv_socket(1))
                    except OSError as exc:
                        self._pending = exc
                if self._copies:
                    frames.append(self._copies.popleft())
            elif length != snap:
                # too big for the slot and no room on the socket for the whole of it
                log.warning("port %d: dropped a frame of %d bytes (no room to receive it whole)",
                            self.port_num, length)
            else:
                frame = ring[off + mac:off + mac + snap]
                if ethernet and (status & TP_STATUS_VLAN_VALID or tci):
                    frame = _tag(frame, tci, tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100)
                frames.append(frame)
            ring[off:off + 4] = _TO_KERNEL
            i = (i + 1) % RING_SLOTS
        self._slot = i
        if len(frames) < limit:
            # The socket itself reports the errors (the interface gone or down); what it holds
            # besides are whole copies of big frames whose slots come later: kept for then.
            try:
                self._copies.extend(self._recv_socket(limit))
            except OSError as exc:
                if not frames:
                    raise
                self._pending = exc
        return frames

    def _recv_socket(self, limit: int) -> list[bytes]:
        frames: list[bytes] = []
        sock, view, ethernet = self._sock, self._view, self._ethernet
        while len(frames) < limit:
            try:
                n, ancdata, flags, addr = sock.recvmsg_into([view], _CMSG_SPACE)
            except BlockingIOError:
                break
            except OSError as exc:
                err = self._error(exc, "recv")
                if frames:
                    # The kernel reports a socket error once: keep it for the next call and
                    # deliver what was read before it.
                    self._pending = err
                    break
                raise err from exc
            if addr[2] == PACKET_OUTGOING:
                continue
            if flags & _MSG_TRUNC:
                log.warning("port %d: dropped a frame larger than %d bytes", self.port_num, MAX_FRAME)
                continue
            frame = bytes(view[:n])
            if ethernet and ancdata:
                # Cheap test first: the tag is rare, unpacking the aux data per frame is not.
                aux = ancdata[0][2]
                if aux[_STATUS_LSB] & TP_STATUS_VLAN_VALID or aux[16] or aux[17]:
                    frame = self._restore_vlan(frame, ancdata)
            frames.append(frame)
        return frames

    def close(self) -> None:
        self._sock.close()
        if self._ring is not None:
            self._ring.close()

    @staticmethod
    def _restore_vlan(frame: bytes, ancdata: list[tuple[int, int, bytes]]) -> bytes:
        for level, kind, data in ancdata:
            if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < _AUX.size:
                continue
            status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID or tci:
                return _tag(frame, tci, tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100)
        return frame

    def send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame)
        except BlockingIOError:
            # Socket send buffer full: wait briefly rather than drop at the first burst.
            select.select([], [self._sock], [], 0.05)
            try:
                self._sock.send(frame)
            except OSError as exc:
                raise self._error(exc, "send") from exc
        except OSError as exc:
            raise self._error(exc, "send") from exc

    def __repr__(self) -> str:
        return f"RawSocketPort({self.port_num}, {self.name!r})"


# --- in-memory port -----------------------------------------------------------------------------

class MemoryPort:
    """A port for unit tests: frames the switch sends land in a queue, tests inject frames.

    ``inject(frame)`` makes the PortSet receive ``frame`` on this port; ``expect(timeout)``
    returns the next frame the switch sent out of it, or raises TimeoutError.
    """

    def __init__(self, port_num: int, name: str | None = None) -> None:
        self.port_num = port_num
        self.name = name or f"mem{port_num}"
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._inbound: collections.deque[bytes] = collections.deque()
        self.sent: queue.Queue[bytes] = queue.Queue()
        self._gone: str | None = None
        self._closed = False

    def fileno(self) -> int:
        return self._rfd

    def inject(self, frame: bytes) -> None:
        self._inbound.append(bytes(frame))
        try:
            os.write(self._wfd, b"\x01")
        except BlockingIOError:
            pass  # the pipe is already full of wake-ups; the frame is queued regardless

    def vanish(self, reason: str = "memory port removed") -> None:
        """Make the port behave like an interface that was deleted."""
        self._gone = reason
        try:
            os.write(self._wfd, b"\x01")
        except BlockingIOError:
            pass

    def recv_batch(self, limit: int = 64) -> list[bytes]:
        try:
            os.read(self._rfd, 4096)
        except BlockingIOError:
            pass
        if self._gone is not None:
            raise PortGone(errno.ENODEV, self._gone)
        frames = []
        while self._inbound and len(frames) < limit:
            frames.append(self._inbound.popleft())
        if self._inbound:
            # Leave a wake-up so the poll loop comes back for the rest.
            try:
                os.write(self._wfd, b"\x01")
            except BlockingIOError:
                pass
        return frames

    def send(self, frame: bytes) -> None:
        if self._gone is not None:
            raise PortGone(errno.ENODEV, self._gone)
        self.sent.put(bytes(frame))

    def expect(self, timeout: float = 1.0) -> bytes:
        """Next frame the switch sent out of this port, waiting up to ``timeout`` seconds."""
        try:
            return self.sent.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no frame sent on {self.name} within {timeout}s") from None

    def expect_nothing(self, within: float = 0.1) -> None:
        """Assert that the switch sends nothing on this port for ``within`` seconds."""
        try:
            frame = self.sent.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected frame on {self.name}: {frame.hex()}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._rfd)
            os.close(self._wfd)

    def __repr__(self) -> str:
        return f"MemoryPort({self.port_num}, {self.name!r})"


# --- pcap -----------------------------------------------------------------------------------------

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAP_SNAPLEN = 262144


class PcapWriter:
    """Classic libpcap file writer; every record is flushed so the file is readable live."""

    def __init__(self, path: str | os.PathLike[str], *, linktype: int = LINKTYPE_ETHERNET,
                 nanosecond: bool = False, snaplen: int = _PCAP_SNAPLEN) -> None:
        self.path = Path(path)
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self._lock = threading.Lock()
        self._f: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        magic = _PCAP_MAGIC_NS if nanosecond else _PCAP_MAGIC_US
        self._f.write(struct.pack("=IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self._f.flush()

    def write(self, frame: bytes, ts_ns: int | None = None) -> None:
        if ts_ns is None:
            ts_ns = time.time_ns()
        sec, frac = divmod(ts_ns, 1_000_000_000)
        if not self.nanosecond:
            frac //= 1000
        incl = min(len(frame), self.snaplen)
        with self._lock:
            if self._f is None:
                return
            self._f.write(struct.pack("=IIII", sec, frac, incl, len(frame)))
            self._f.write(frame[:incl])
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapDir:
    """BMv2's ``--pcap DIR``: per interface, ``DIR/<iface>_in.pcap`` and ``DIR/<iface>_out.pcap``.

    Both files are created when the port is added, as BMv2 does, even if no frame ever
    passes. "in" holds frames received on the port, "out" frames sent out of it.
    """

    def __init__(self, directory: str | os.PathLike[str], *, nanosecond: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.nanosecond = nanosecond
        self._writers: dict[str, tuple[PcapWriter, PcapWriter]] = {}
        self._lock = threading.Lock()

    def open(self, ifname: str, linktype: int = LINKTYPE_ETHERNET) -> tuple[PcapWriter, PcapWriter]:
        with self._lock:
            pair = self._writers.get(ifname)
            if pair is None:
                pair = (
                    PcapWriter(self.directory / f"{ifname}_in.pcap", linktype=linktype,
                               nanosecond=self.nanosecond),
                    PcapWriter(self.directory / f"{ifname}_out.pcap", linktype=linktype,
                               nanosecond=self.nanosecond),
                )
                self._writers[ifname] = pair
            return pair

    def close(self, ifname: str | None = None) -> None:
        with self._lock:
            names = [ifname] if ifname is not None else list(self._writers)
            for name in names:
                pair = self._writers.pop(name, None)
                if pair:
                    pair[0].close()
                    pair[1].close()


def read_pcap(path: str | os.PathLike[str]) -> tuple[int, list[tuple[int, bytes]]]:
    """Read a classic pcap file: (linktype, [(timestamp_ns, frame), ...]). For tests and tools."""
    data = Path(path).read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    if magic in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
        end = "<"
    else:
        end = ">"
        magic = struct.unpack_from(">I", data)[0]
    scale = 1 if magic == _PCAP_MAGIC_NS else 1000
    linktype = struct.unpack_from(end + "I", data, 20)[0]
    out = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(end + "IIII", data, off)
        off += 16
        out.append((sec * 1_000_000_000 + frac * scale, data[off:off + incl]))
        off += incl
    return linktype, out


# --- port set ---------------------------------------------------------------------------------------

@dataclass
class PortStats:
    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_errors: int = 0
    up: bool = True


FrameCallback = Callable[[int, bytes], None]
PortDownCallback = Callable[[int, str], None]


class PortSet:
    """The ports of one switch, one receive thread for all of them.

    One thread waiting on every port with epoll and draining each ready port in batches
    measured faster than a thread per port (which contend for the GIL and pay a thread switch
    per frame). ``on_frame`` runs on that thread; it may call :meth:`send` directly.
    """

    def __init__(self, on_frame: FrameCallback, on_port_down: PortDownCallback | None = None, *,
                 pcap: PcapDir | None = None, batch: int = 64) -> None:
        self.on_frame = on_frame
        self.on_port_down = on_port_down
        self.pcap = pcap
        self.batch = batch
        self.stats: dict[int, PortStats] = {}
        self.dropped_no_port = 0
        self._ports: dict[int, Port] = {}
        self._by_fd: dict[int, Port] = {}
        self._pcap_w: dict[int, tuple[PcapWriter, PcapWriter]] = {}
        self._lock = threading.Lock()
        self._ep = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._ep.register(self._wake_r, select.EPOLLIN)
        self._closing = False
        self._thread: threading.Thread | None = None

    # membership
    def add(self, port: Port) -> Port:
        with self._lock:
            if port.port_num in self._ports:
                raise ValueError(f"port {port.port_num} already exists")
            self._ports[port.port_num] = port
            self._by_fd[port.fileno()] = port
            self.stats[port.port_num] = PortStats()
            if self.pcap is not None:
                linktype = LINKTYPE_ETHERNET
                if isinstance(port, RawSocketPort) and port.hatype != ARPHRD_ETHER:
                    linktype = LINKTYPE_RAW
                self._pcap_w[port.port_num] = self.pcap.open(port.name, linktype)
            self._ep.register(port.fileno(), select.EPOLLIN)
        log.info("port %d added: %r", port.port_num, port)
        return port

    def add_interface(self, port_num: int, ifname: str) -> RawSocketPort:
        port = RawSocketPort(port_num, ifname)
        try:
            self.add(port)
        except BaseException:
            port.close()
            raise
        return port

    def remove(self, port_num: int) -> None:
        with self._lock:
            port = self._ports.pop(port_num, None)
            if port is None:
                raise KeyError(f"no port {port_num}")
            self._forget(port)
        log.info("port %d removed", port_num)

    def _forget(self, port: Port) -> None:
        # Caller holds self._lock.
        fd = port.fileno()
        self._by_fd.pop(fd, None)
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass
        port.close()
        self._pcap_w.pop(port.port_num, None)
        if self.pcap is not None:
            self.pcap.close(port.name)

    def ports(self) -> dict[int, Port]:
        with self._lock:
            return dict(self._ports)

    def __contains__(self, port_num: int) -> bool:
        return port_num in self._ports

    # sending
    def send(self, port_num: int, frame: bytes) -> bool:
        """Send ``frame`` out of ``port_num``; False when dropped (unknown port, port error)."""
        port = self._ports.get(port_num)
        if port is None:
            self.dropped_no_port += 1
            log.debug("send to nonexistent port %d dropped (%d bytes)", port_num, len(frame))
            return False
        st = self.stats[port_num]
        try:
            port.send(frame)
        except PortGone as exc:
            st.tx_errors += 1
            self._port_gone(port, str(exc))
            return False
        except PortLinkDown as exc:
            st.tx_errors += 1
            self._link_down(port, st, str(exc))
            return False
        except OSError as exc:
            st.tx_errors += 1
            log.debug("port %d: send of %d bytes failed: %s", port_num, len(frame), exc)
            return False
        st.tx_frames += 1
        st.tx_bytes += len(frame)
        w = self._pcap_w.get(port_num)
        if w is not None:
            w[1].write(frame)
        return True

    # port failure
    def _port_gone(self, port: Port, reason: str) -> None:
        with self._lock:
            if self._ports.get(port.port_num) is not port:
                return  # already handled (by the other direction)
            del self._ports[port.port_num]
            self.stats[port.port_num].up = False
            self._forget(port)
        log.warning("port %d down: %s", port.port_num, reason)
        self._notify_down(port.port_num, reason)

    def _link_down(self, port: Port, st: PortStats, reason: str) -> None:
        if not st.up:
            return
        st.up = False
        log.warning("port %d down: %s", port.port_num, reason)
        self._notify_down(port.port_num, reason)

    def _notify_down(self, port_num: int, reason: str) -> None:
        if self.on_port_down is not None:
            try:
                self.on_port_down(port_num, reason)
            except Exception:
                log.exception("on_port_down callback failed for port %d", port_num)

    # receive loop
    def start(self) -> PortSet:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="p4sim-ports", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        ep, wake_r = self._ep, self._wake_r
        while not self._closing:
            try:
                events = ep.poll(1.0)
            except InterruptedError:
                continue
            except OSError:
                if self._closing:
                    break
                raise
            for fd, _ev in events:
                if fd == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                port = self._by_fd.get(fd)
                if port is None:
                    continue
                self._drain(port)

    def _drain(self, port: Port) -> None:
        num = port.port_num
        st = self.stats.get(num)
        if st is None:
            return
        try:
            frames = port.recv_batch(self.batch)
        except PortGone as exc:
            self._port_gone(port, str(exc))
            return
        except PortLinkDown as exc:
            self._link_down(port, st, str(exc))
            return
        except OSError as exc:
            log.warning("port %d: receive error: %s", num, exc)
            return
        if not frames:
            return
        if not st.up:
            st.up = True
            log.info("port %d up again", num)
        st.rx_frames += len(frames)
        st.rx_bytes += sum(map(len, frames))
        w = self._pcap_w.get(num)
        on_frame = self.on_frame
        for frame in frames:
            if w is not None:
                w[0].write(frame)
            try:
                on_frame(num, frame)
            except Exception:
                log.exception("on_frame failed for a frame on port %d", num)

    def close(self) -> None:
        """Stop the receive thread and close every port (and pcap file)."""
        if self._closing:
            return
        self._closing = True
        try:
            os.write(self._wake_w, b"\x00")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("port receive thread did not stop within 5 s")
        with self._lock:
            for port in list(self._ports.values()):
                self._forget(port)
            self._ports.clear()
        self._ep.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.pcap is not None:
            self.pcap.close()

    def __enter__(self) -> PortSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
