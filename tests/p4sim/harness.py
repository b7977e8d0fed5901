"""An in-process p4sim switch for language and extern tests: compile, program by name, send."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p4.v1 import p4runtime_pb2

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.dataplane.device import P4SimDevice
from p4sim.runtime.state import SwitchState

V1_PRELUDE = "#include <core.p4>\n#include <v1model.p4>\n"


@dataclass
class Sim:
    compiled: CompiledProgram
    cpu_port: int | None = 255
    sent: list[tuple[int, bytes]] = field(default_factory=list)
    to_cpu: list[bytes] = field(default_factory=list)
    messages: list[p4runtime_pb2.StreamMessageResponse] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device = P4SimDevice(lambda port, frame: self.sent.append((port, frame)), self.cpu_port)
        self.device.set_cpu_packet_handler(self.to_cpu.append)
        self.p4info = self.compiled.p4info
        self.state = SwitchState(self.p4info, notify=self.messages.append)
        self.device.verify_pipeline(self.p4info, self.compiled.device_config)
        self.device.commit_pipeline(self.p4info, self.compiled.device_config, self.state)

    # -- names to ids ------------------------------------------------------------------------------

    def _find(self, kind: str, name: str) -> Any:
        for ent in getattr(self.p4info, kind):
            if ent.preamble.name == name or ent.preamble.alias == name:
                return ent
        raise KeyError(f"no {kind[:-1]} named {name}")

    def table_id(self, name: str) -> int:
        return self._find("tables", name).preamble.id

    def action_id(self, name: str) -> int:
        return self._find("actions", name).preamble.id

    def insert(self, table: str, key: list[Any], action: str, params: tuple[int, ...] = (), priority: int = 0) -> None:
        """Insert with the state's key format (exact int, lpm (v, plen), ternary (v, m), range (lo, hi))."""
        with self.state.lock:
            self.state.table(self.table_id(table)).insert(tuple(key), priority, self.action_id(action), tuple(params), 0)

    def set_default(self, table: str, action: str, params: tuple[int, ...] = ()) -> None:
        self.state.set_initial_default(self.table_id(table), self.action_id(action), tuple(params), False)

    def register(self, name: str, index: int) -> int:
        return self.state.register_read(self._find("registers", name).preamble.id, index)

    def counter(self, name: str, index: int) -> tuple[int, int]:
        c = self.state.counters[self._find("counters", name).preamble.id]
        return c.read(index) if hasattr(c, "read") else (c.packets[index], c.bytes[index])

    # -- packets ----------------------------------------------------------------------------------

    def send(self, port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """Run one frame through the switch; return what it sent, in order."""
        start = len(self.sent)
        self.device.receive(port, frame)
        return self.sent[start:]

    def send_one(self, port: int, frame: bytes) -> tuple[int, bytes]:
        out = self.send(port, frame)
        assert len(out) == 1, f"expected one frame out, got {len(out)}: {out}"
        return out[0]


def sim_from_source(tmp_path: Path, body: str, cpu_port: int | None = 255, prelude: bool = True) -> Sim:
    """Compile a program (v1model prelude added) from text and load it."""
    src = tmp_path / "prog.p4"
    src.write_text((V1_PRELUDE if prelude else "") + textwrap.dedent(body))
    return Sim(compile_file(src), cpu_port)


def v1_program(decls: str, ingress: str, *, parser: str = "state start { pkt.extract(hdr.h); transition accept; }",
               egress: str = "", deparser: str = "pkt.emit(hdr);", ingress_locals: str = "",
               egress_locals: str = "", parser_locals: str = "", verify: str = "", compute: str = "") -> str:
    """A V1Switch program from its pieces: ``decls`` declares headers_t and meta_t (and anything
    else); the rest are the bodies of the six blocks (parameters hdr, m, sm, pkt)."""
    return f"""
{textwrap.dedent(decls)}
parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {{
    {parser_locals}
    {parser}
}}
control VC(inout headers_t hdr, inout meta_t m) {{ apply {{ {verify} }} }}
control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {{
    {ingress_locals}
    apply {{ {ingress} }}
}}
control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {{
    {egress_locals}
    apply {{ {egress} }}
}}
control CC(inout headers_t hdr, inout meta_t m) {{ apply {{ {compute} }} }}
control D(packet_out pkt, in headers_t hdr) {{ apply {{ {deparser} }} }}
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
"""
