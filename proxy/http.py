"""HTTP/1.x request heads, bounded: find where a head ends, parse its request line and headers,
and rewrite headers. Bytes stay bytes; names and values are decoded as Latin-1 only to log them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["HEAD_END", "HttpHead", "NotHttp", "find_head_end", "looks_like_request", "parse_head", "rewrite_head"]

HEAD_END = b"\r\n\r\n"

# method SP request-target SP HTTP/x.y (RFC 9112 section 3); the method is a token.
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP/\d\.\d)")
_TOKEN_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")


class NotHttp(ValueError):
    """The bytes are not an HTTP/1.x request head."""


@dataclass(frozen=True)
class HttpHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    size: int  # bytes of the head, the empty line included

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for n, v in self.headers if n.lower() == lname), None)


def find_head_end(data: bytes | bytearray) -> int:
    """Offset just past the head's empty line, or -1 when the head is not complete yet."""
    at = data.find(HEAD_END)
    return -1 if at < 0 else at + len(HEAD_END)


def looks_like_request(data: bytes | bytearray) -> bool:
    """False as soon as the bytes cannot start an HTTP request (so a policy stops waiting for a
    head that will never come, e.g. on a server-first or binary protocol)."""
    line_end = data.find(b"\r\n")
    if line_end >= 0:
        return _REQUEST_LINE.fullmatch(bytes(data[:line_end])) is not None
    # No complete line yet: the method must be a token followed by a space.
    first = bytes(data[:64])
    prefix = _TOKEN_PREFIX.match(first)
    assert prefix is not None
    rest = first[prefix.end():]
    return not rest or (prefix.end() > 0 and rest[:1] == b" ")


def parse_head(head: bytes | bytearray) -> HttpHead:
    """Parse a complete head (up to and including its empty line); raises NotHttp."""
    text = bytes(head)
    if not text.endswith(HEAD_END):
        raise NotHttp("the head does not end with an empty line")
    lines = text[: -len(HEAD_END)].split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise NotHttp(f"not a request line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or _TOKEN_PREFIX.fullmatch(name) is None:
            raise NotHttp(f"not a header field: {line[:80]!r}")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    method, target, version = (part.decode("latin-1") for part in match.groups())
    return HttpHead(method, target, version, tuple(headers), len(text))


def rewrite_head(head: bytes | bytearray, set_headers: Mapping[str, str], remove_headers: Sequence[str]) -> bytes:
    """The head with ``remove_headers`` and every header named in ``set_headers`` dropped, and
    ``set_headers`` appended (in order) before the empty line. Other lines keep their bytes."""
    text = bytes(head)
    if not text.endswith(HEAD_END):
        raise NotHttp("the head does not end with an empty line")
    lines = text[: -len(HEAD_END)].split(b"\r\n")
    drop = {name.lower().encode("latin-1") for name in (*remove_headers, *set_headers)}
    kept = [lines[0]] + [line for line in lines[1:] if line.partition(b":")[0].strip().lower() not in drop]
    added = [f"{name}: {value}".encode("latin-1") for name, value in set_headers.items()]
    return b"\r\n".join(kept + added) + HEAD_END
