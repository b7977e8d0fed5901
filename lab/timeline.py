"""One connection's life as a picture (SVG, no plotting library): the claim-1 handshake, the bytes
through the proxy, the splice, the bytes the switch carried alone. ``make demo`` writes one for
its inspect connection next to its logs."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

__all__ = ["Timeline", "write_svg"]

WIDTH, HEIGHT, LEFT, RIGHT = 900, 260, 40, 40


@dataclass(frozen=True)
class Timeline:
    """Times in seconds from the client's SYN; sizes in bytes."""

    title: str
    handshake_end: float  # the last SYN-ACK of the proxy's legs
    request: float | None  # the proxy saw the request (None: the policy does not read one)
    splice: float | None  # the proxy stepped out (None: never)
    end: float
    via_proxy: int
    switch_alone: int


def _x(t: float, end: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (t / end if end > 0 else 0)


def write_svg(tl: Timeline, path: Path) -> Path:
    end = max(tl.end, tl.handshake_end, 1e-3)
    splice = tl.splice if tl.splice is not None else end
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
        'font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{escape(tl.title)}</text>',
        # the handshake
        f'<rect x="{_x(0, end):.1f}" y="50" width="{max(_x(tl.handshake_end, end) - _x(0, end), 2):.1f}" '
        'height="30" fill="#8e6bbf"/>',
        f'<text x="{_x(0, end):.1f}" y="98">claim-1 handshake: {tl.handshake_end * 1000:.0f} ms '
        '(client, server and both proxy legs)</text>',
        # through the proxy
        f'<rect x="{_x(tl.handshake_end, end):.1f}" y="115" '
        f'width="{max(_x(splice, end) - _x(tl.handshake_end, end), 2):.1f}" height="30" fill="#e39b3b"/>',
        f'<text x="{_x(tl.handshake_end, end):.1f}" y="163">through the proxy: {tl.via_proxy:,} bytes</text>',
    ]
    if tl.splice is not None:
        parts += [
            f'<rect x="{_x(splice, end):.1f}" y="180" width="{max(_x(end, end) - _x(splice, end), 2):.1f}" '
            'height="30" fill="#3b8ee3"/>',
            f'<text x="{min(_x(splice, end), WIDTH - 330):.1f}" y="228">the switch alone: {tl.switch_alone:,} bytes'
            f' (from {splice * 1000:.0f} ms)</text>',
            f'<line x1="{_x(splice, end):.1f}" y1="40" x2="{_x(splice, end):.1f}" y2="215" stroke="black" '
            'stroke-dasharray="4 3"/>',
            f'<text x="{_x(splice, end) + 4:.1f}" y="44">splice</text>',
        ]
    if tl.request is not None:
        parts.append(f'<line x1="{_x(tl.request, end):.1f}" y1="110" x2="{_x(tl.request, end):.1f}" y2="150" '
                     'stroke="black"/>')
        parts.append(f'<text x="{_x(tl.request, end) + 4:.1f}" y="112" font-size="11">request</text>')
    parts.append(f'<text x="{WIDTH - RIGHT:.1f}" y="250" text-anchor="end">{end:.2f} s</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
    return path
