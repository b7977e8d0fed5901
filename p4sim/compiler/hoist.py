"""Post-pass over the generated module: read block parameters that hold aggregates from locals.

A parser or control keeps its apply parameters in a locals object ``L`` so that its actions,
tables and parser states (separate functions) can reach them. Aggregate parameters (structs,
headers, unions, stacks) are bound once, when the block starts, and never rebound: assignment
to an aggregate copies into the existing object (``_set``). So inside any one function,
``L.g_hdr`` always names the same object, and each of its uses can be a local variable read
instead of an attribute hop. That matters because the generated code says ``L.g_hdr.ipv4...``
everywhere: a TCP segment through a program like p4src/splice.p4 makes hundreds of these reads.

Scalar parameters (``L.p_x``) are left alone: an action called with ``L`` may assign them.
"""

from __future__ import annotations

import re

from .types import StackT, StructLikeT, Type, strip_newtype

_STABLE = re.compile(r"\bL\.(g_\w+)\b")
_BIND = re.compile(r"^    L\.(g_\w+) = (a_\w+)$")
_TAKES_L = re.compile(r"^def \w+\(K, L\b")
_NEW_L = re.compile(r"^    L = L_\w+\(\)$")
_USES_L = re.compile(r"\bL\b")


def param_attr(name: str, t: Type) -> str:
    """The attribute of ``L`` holding apply parameter ``name`` (``name`` already a Python identifier).

    ``g_`` marks aggregates, which this pass may cache; everything else is ``p_``.
    """
    return ("g_" if isinstance(strip_newtype(t), (StructLikeT, StackT)) else "p_") + name


def _hoist_function(lines: list[str]) -> list[str]:
    body = lines[1:]
    binds = {m.group(1): m.group(2) for ln in body if (m := _BIND.match(ln))}
    if binds:
        # the block's own apply function: its parameters are the objects themselves
        out = [lines[0]]
        for ln in body:
            if _BIND.match(ln):
                out.append(ln)
            else:
                out.append(_STABLE.sub(lambda m: binds.get(m.group(1), m.group(0)), ln))
        # A block whose body no longer needs L (no actions, tables, locals or scalar
        # parameters) skips building it: one object and its bindings per block per packet.
        setup = [ln for ln in out[1:] if _NEW_L.match(ln) or _BIND.match(ln)]
        if len(setup) == len(binds) + 1 and not any(_USES_L.search(ln) for ln in out[1:]
                                                    if not (_NEW_L.match(ln) or _BIND.match(ln))):
            out = [ln for ln in out if ln not in setup] or out
            if len(out) == 1:
                out.append("    pass")
        return out
    if not _TAKES_L.match(lines[0]):
        return lines
    used: dict[str, None] = {}
    for ln in body:
        for m in _STABLE.finditer(ln):
            used.setdefault(m.group(1))
    if not used:
        return lines
    out = [lines[0]]
    out.extend(f"    L{attr} = L.{attr}" for attr in used)
    out.extend(_STABLE.sub(lambda m: "L" + m.group(1), ln) for ln in body)
    return out


def hoist_stable_params(src: str) -> str:
    """Rewrite every top-level function of ``src`` (generated code) as the module docstring says."""
    out: list[str] = []
    fn: list[str] | None = None
    for ln in src.split("\n"):
        if ln and not ln[0].isspace():
            if fn is not None:
                out.extend(_hoist_function(fn))
                fn = None
            if ln.startswith("def "):
                fn = [ln]
                continue
            out.append(ln)
        elif fn is not None:
            fn.append(ln)
        else:
            out.append(ln)
    if fn is not None:
        out.extend(_hoist_function(fn))
    return "\n".join(out)
