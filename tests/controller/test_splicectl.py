"""splicectl, the console script, against a real p4sim switch running the splice program.

The switch runs in this process (MemoryPorts 1-3, CPU port 255); splicectl runs as a subprocess,
exactly as an operator would run it. The program is compiled here from p4src/ and written to a
temporary build directory, so the test does not depend on a stale build/.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from p4splice.controller import dataplane as dp
from p4splice.controller.p4rt import SwitchSession
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from p4sim.compiler.driver import compile_file
from p4sim.compiler.p4info import write_p4info
from p4sim.dataplane.ports import MemoryPort
from p4sim.switch import SwitchProcess

ROOT = Path(__file__).resolve().parents[2]
SPLICE = ROOT / "p4src" / "splice.p4"
DEVICE, CPU = 1, 255
MAC_SW, MAC_C, MAC_S, MAC_P = "02:00:00:00:00:01", "02:00:00:00:00:0c", "02:00:00:00:00:05", "02:00:00:00:00:0f"


def splicectl_command() -> list[str]:
    """The console script next to this interpreter (the venv's), else the module."""
    script = Path(sys.executable).parent / "splicectl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "p4splice.controller.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def assert_one_line_error(self, code: int, *fragments: str) -> None:
        """The CLI's failure contract: nothing on stdout, one ``splicectl: error:`` line, no traceback."""
        assert self.code == code, (self.code, self.out, self.err)
        assert self.out == ""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("splicectl: error: "), self.err
        for f in fragments:
            assert f in lines[0], (f, lines[0])


@dataclass
class Env:
    switch: SwitchProcess
    ports: dict[int, MemoryPort]
    build: Path

    @property
    def addr(self) -> str:
        return self.switch.grpc_addr

    def run(self, *args: str, timeout: float = 30.0, cwd: Path | None = None) -> Run:
        cmd = [*splicectl_command(), "--grpc-addr", self.addr, "--timeout", "5", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                           env=os.environ | {"PYTHONWARNINGS": "ignore"})
        return Run(p.returncode, p.stdout, p.stderr)

    async def arun(self, *args: str) -> Run:
        """Same, from a coroutine (a test that holds a session on the loop meanwhile)."""
        cmd = [*splicectl_command(), "--grpc-addr", self.addr, "--timeout", "5", *args]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        return Run(proc.returncode or 0, out.decode(), err.decode())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    build = tmp_path_factory.mktemp("build")
    compiled = compile_file(SPLICE)
    (build / "splice.p4sim.json").write_bytes(compiled.device_config)
    write_p4info(compiled.p4info, str(build / "splice.p4info.txtpb"), None)
    sw = SwitchProcess(device_id=DEVICE, grpc_addr="127.0.0.1:0", cpu_port=CPU)
    ports = {n: MemoryPort(n) for n in (1, 2, 3)}
    for p in ports.values():
        sw.ports.add(p)
    sw.start()
    e = Env(sw, ports, build)
    try:
        # An empty switch first: status says so, and commands that need the program refuse.
        st = e.run("status", "--json").json()
        assert st["pipeline"] is None and st["tables"] == []
        e.run("routes", "list").assert_one_line_error(1, "no pipeline")
        pushed = e.run("pipeline", "push", "--p4info", str(build / "splice.p4info.txtpb"),
                       "--config", str(build / "splice.p4sim.json"), "--json").json()
        assert pushed["splice_program"] and pushed["clone_session"] == {"session_id": 99, "port": 255}
        yield e
    finally:
        sw.stop()


def _drain(port: MemoryPort) -> None:
    while not port.sent.empty():
        port.sent.get_nowait()


def _tcp(src: str, dst: str, sport: int, dport: int, flags: str = "A", payload: bytes = b"") -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_SW) / IP(src=src, dst=dst, ttl=64) /
                 TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=2000) / payload)


# --- pipeline and status -----------------------------------------------------------------------

def test_pipeline_show_and_status(env: Env, tmp_path: Path) -> None:
    saved = tmp_path / "p4info.txtpb"
    show = env.run("pipeline", "show", "--save-p4info", str(saved), "--json").json()
    assert show["splice_program"] and show["schema_problems"] == []
    assert show["device_config"]["kind"] == "p4sim-program v1" and show["name"] == "splice.p4"
    assert {t["alias"] for t in show["tables"]} == {"routes", "services", "flows"}
    assert "ipv4_dst:lpm/32" in next(t for t in show["tables"] if t["alias"] == "routes")["keys"]
    assert 'name: "SpliceIngress.flows.flows"' in saved.read_text()
    # The P4Info saved from the switch works as --p4info for later commands.
    assert env.run("--p4info", str(saved), "services", "list", "--json").json() == {"services": []}

    text = env.run("pipeline", "show")
    assert text.code == 0 and "splice schema  ok" in text.out and "SpliceIngress.sanity.malformed" in text.out

    st = env.run("status", "--json").json()
    assert st["switch"]["p4runtime"] and st["switch"]["device_id"] == 1
    assert st["pipeline"]["splice_program"] and st["pipeline"]["cookie"] == show["cookie"]
    assert st["clone_session"] == {"session_id": 99, "present": True, "ports": [255]}
    sizes = {t["alias"]: t["size"] for t in st["tables"]}
    assert sizes == {"routes": 1024, "services": 256, "flows": 4096}
    assert st["arbitration"]["known"] and st["arbitration"]["primary"] is False
    human = env.run("status")
    assert human.code == 0
    assert "no primary controller" in human.out and "clone session  99 to port 255" in human.out
    assert any(line.split()[:3] == ["routes", "0", "1024"] for line in human.out.splitlines())


# --- routes ----------------------------------------------------------------------------------------

def test_routes_add_list_forward_del(env: Env) -> None:
    add = env.run("routes", "add", "10.0.1.0/24", "2", "--smac", MAC_SW, "--dmac", MAC_S)
    assert add.code == 0 and "10.0.1.0/24" in add.out, add.err
    assert env.run("routes", "add", "10.9.0.0/16", "3", "--smac", MAC_SW, "--dmac", MAC_P, "--json").json() == {
        "added": {"prefix": "10.9.0.0/16", "port": 3, "smac": MAC_SW, "dmac": MAC_P}}
    routes = env.run("routes", "list", "--json").json()["routes"]
    assert {"prefix": "10.0.1.0/24", "action": "route", "port": 2, "smac": MAC_SW, "dmac": MAC_S} in routes
    human = env.run("routes", "list").out.splitlines()
    assert human[0].split() == ["PREFIX", "PORT", "SMAC", "DMAC"]
    assert human[1].split() == ["10.0.1.0/24", "2", MAC_SW, MAC_S]  # longest prefix first

    # The route forwards: out of port 2, MACs rewritten, TTL - 1.
    _drain(env.ports[2])
    env.ports[1].inject(_tcp("10.0.0.5", "10.0.1.7", 40000, 22, payload=b"hello"))
    out = Ether(env.ports[2].expect(timeout=5))
    assert (out.src, out.dst, out[IP].dst, out[IP].ttl) == (MAC_SW, MAC_S, "10.0.1.7", 63)

    env.run("routes", "add", "10.0.1.0/24", "2", "--smac", MAC_SW, "--dmac", MAC_S).assert_one_line_error(
        1, "exists already", "--replace")
    assert env.run("routes", "add", "10.0.1.0/24", "3", "--smac", MAC_SW, "--dmac", MAC_P, "--replace").code == 0
    assert env.run("routes", "list", "--json").json()["routes"][0]["port"] == 3

    assert env.run("routes", "del", "10.0.1.0/24").code == 0
    assert env.run("routes", "del", "10.9.0.0/16").code == 0
    assert env.run("routes", "list", "--json").json() == {"routes": []}
    assert env.run("routes", "list").out.strip() == "no routes"
    env.run("routes", "del", "10.0.1.0/24").assert_one_line_error(1, "no route for 10.0.1.0/24")
    # Gone from the data plane too: the routes table's default drops.
    _drain(env.ports[2])
    env.ports[1].inject(_tcp("10.0.0.5", "10.0.1.7", 40000, 22))
    env.ports[2].expect_nothing(within=0.2)


# --- services --------------------------------------------------------------------------------------

def test_services_add_list_del(env: Env) -> None:
    assert env.run("services", "add", "10.0.1.10:80", "--proxy-port", "3").code == 0
    assert env.run("services", "add", "10.0.1.10:443", "--proxy-port", "3", "--json").json() == {
        "added": {"server": "10.0.1.10:443", "proxy_port": 3}}
    listed = env.run("services", "list", "--json").json()["services"]
    assert [s["server"] for s in listed] == ["10.0.1.10:80", "10.0.1.10:443"]
    assert listed[0] == {"server": "10.0.1.10:80", "server_addr": "10.0.1.10", "server_port": 80, "proxy_port": 3,
                         "handshakes": "controller", "draining": False}
    human = env.run("services", "list").out.splitlines()
    assert human[0].split() == ["SERVER", "PROXY", "PORT"] and human[1].split() == ["10.0.1.10:80", "3"]
    env.run("services", "add", "10.0.1.10:80", "--proxy-port", "2").assert_one_line_error(1, "exists already")
    assert env.run("services", "del", "10.0.1.10:80").code == 0
    assert env.run("services", "del", "10.0.1.10:443").code == 0
    assert env.run("services", "list", "--json").json() == {"services": []}
    env.run("services", "del", "10.0.1.10:80").assert_one_line_error(1, "no service 10.0.1.10:80")


# --- flows and counters ------------------------------------------------------------------------------

C, S = ("10.0.0.5", 40000), ("10.0.1.10", 80)


def _legs() -> list:
    """A proxied connection's four legs (client on 1, server on 2, proxy on 3) and a stray punt."""
    fm = dp.FlowMatch.of
    return [
        dp.flow_translate(fm(1, C[0], C[1], S[0], S[1]), 3, MAC_SW, MAC_P, ack_delta=1000, tsecr_delta=7,
                          idle_timeout_ns=60 * 10**9),
        dp.flow_translate(fm(3, S[0], S[1], C[0], C[1]), 1, MAC_SW, MAC_C, seq_delta=-1000, tsval_delta=-7,
                          win_shift_from=7, win_shift_to=6),
        dp.flow_translate(fm(3, C[0], C[1], S[0], S[1]), 2, MAC_SW, MAC_S, seq_delta=-55),
        dp.flow_hold(fm(2, S[0], S[1], C[0], C[1]), 3, MAC_SW, MAC_P, ack_delta=55),
        dp.flow_punt(fm(1, "10.0.0.6", 1234, "10.0.9.9", 22)),
    ]


def test_flows_grouped_per_connection_with_counters(env: Env) -> None:
    async def install(op: str) -> None:
        async with SwitchSession(env.addr, DEVICE, election_id=50) as s:
            await s.wait_primary(5)
            await s.adopt_pipeline()
            await getattr(s, op)(_legs())

    assert env.run("services", "add", f"{S[0]}:{S[1]}", "--proxy-port", "3").code == 0
    asyncio.run(install("insert"))
    try:
        # One segment through the C>P leg: the direct counter and the translation show.
        _drain(env.ports[3])
        env.ports[1].inject(_tcp(C[0], S[0], C[1], S[1], payload=b"GET /"))
        out = Ether(env.ports[3].expect(timeout=5))
        assert out[TCP].ack == 3000 and out.dst == MAC_P

        data = env.run("flows", "--json").json()
        assert data["entries"] == 5
        conn, stray = data["connections"]
        assert conn["connection"] == "10.0.0.5:40000 > 10.0.1.10:80" and conn["proxy_port"] == 3
        assert conn["state"] == "splicing"  # one leg holds
        legs = {leg["leg"]: leg for leg in conn["legs"]}
        assert list(legs) == ["C>P", "P>S", "S>P", "P>C"]
        assert legs["C>P"]["ack_delta"] == 1000 and legs["C>P"]["packets"] == 1 and legs["C>P"]["bytes"] > 0
        assert legs["C>P"]["idle_timeout_ns"] == 60 * 10**9 and legs["C>P"]["since_last_hit_ns"] is not None
        assert legs["P>C"]["seq_delta"] == 2**32 - 1000 and legs["P>C"]["win_shift_from"] == 7
        assert legs["S>P"]["action"] == "hold" and legs["P>S"]["packets"] == 0
        assert stray["state"] == "punt" and stray["client"] is None and stray["legs"][0]["action"] == "punt"

        human = env.run("flows").out.splitlines()
        assert human[0].split()[:6] == ["CONNECTION", "STATE", "LEG", "IN", "ACTION", "OUT"]
        first = human[1].split()
        assert first[:6] == ["10.0.0.5:40000", ">", "10.0.1.10:80", "splicing", "C>P", "1"]
        assert "+1000" in first and "+7" in first
        assert "-1000" in human[4].split() and "7>6" in human[4].split()

        counters = env.run("counters", "--json").json()
        assert counters["flows"] == {"entries": 5, "packets": 1, "bytes": legs["C>P"]["bytes"]}
    finally:
        asyncio.run(install("delete"))
        env.run("services", "del", f"{S[0]}:{S[1]}")
    assert env.run("flows").out.strip() == "no flow entries"


def test_counters_malformed_by_reason(env: Env) -> None:
    before = env.run("counters", "--json").json()["malformed"]
    bad = Ether(src=MAC_C, dst=MAC_SW) / IP(src="10.0.0.5", dst="10.0.1.7", ihl=4, version=4) / TCP()
    env.ports[1].inject(bytes(bad))
    truncated = bytes(Ether(src=MAC_C, dst=MAC_SW) / IP(src="10.0.0.5", dst="10.0.1.7") / TCP())[:30]
    env.ports[1].inject(truncated)
    for _ in range(50):
        after = env.run("counters", "--json").json()
        if after["malformed_total"] >= sum(before.values()) + 2:
            break
    assert after["malformed"]["IPV4_HEADER"] == before["IPV4_HEADER"] + 1
    assert after["malformed"]["TRUNCATED"] == before["TRUNCATED"] + 1
    human = env.run("counters").out
    assert "IPV4_HEADER" in human and "TRUNCATED" in human and "OTHER" not in human
    assert "OTHER" in env.run("counters", "--all").out


# --- arbitration: reads never take the role, writes do not force it -------------------------------

def test_reads_beside_a_primary_and_writes_refused_without_a_higher_election_id(env: Env) -> None:
    async def scenario() -> None:
        async with SwitchSession(env.addr, DEVICE, election_id=10) as controller:
            await controller.wait_primary(5)
            st = (await env.arun("--election-id", "99", "status", "--json")).json()
            arb = st["arbitration"]
            assert (arb["known"], arb["primary"], arb["status"]) == (True, True, "ALREADY_EXISTS")
            assert arb["highest_election_id"] >= 10  # the highest the switch has seen, not ours (99)
            assert arb["highest_election_id"] != 99
            assert (await env.arun("--election-id", "99", "routes", "list", "--json")).json() == {"routes": []}
            assert controller.is_primary  # a read with a higher id took nothing

            refused = await env.arun("routes", "add", "10.7.0.0/16", "2", "--smac", MAC_SW, "--dmac", MAC_S)
            refused.assert_one_line_error(1, "not primary with election id 1", "higher --election-id")
            clash = await env.arun("--election-id", "10", "services", "add", "10.0.1.1:80", "--proxy-port", "3")
            clash.assert_one_line_error(1, "refused our arbitration", "already used")
            assert controller.is_primary

    asyncio.run(scenario())


# --- errors: one line, nonzero status, never a traceback ----------------------------------------------

@pytest.mark.parametrize("args, code, fragment", [
    (("bogus",), 2, "invalid choice: 'bogus'"),
    (("routes",), 2, "required"),
    (("routes", "add", "10.0.0.0/8", "1"), 2, "--smac"),
    (("routes", "add", "10.0.0.1/8", "1", "--smac", MAC_SW, "--dmac", MAC_S), 2, "host bits"),
    (("routes", "add", "banana", "1", "--smac", MAC_SW, "--dmac", MAC_S), 2, "not an IPv4 prefix"),
    (("routes", "add", "10.0.0.0/8", "1", "--smac", "02:00:00", "--dmac", MAC_S), 2, "smac: not a MAC"),
    (("routes", "add", "10.0.0.0/8", "512", "--smac", MAC_SW, "--dmac", MAC_S), 2, "not a switch port"),
    (("services", "add", "10.0.0.1", "--proxy-port", "3"), 2, "ADDR:PORT"),
    (("services", "add", "10.0.0.1:http", "--proxy-port", "3"), 2, "not a TCP port"),
    (("services", "del", "10.0.0.256:80"), 2, "not an IPv4 address"),
    (("flows", "--bogus"), 2, "unrecognized arguments: --bogus"),
    (("--timeout", "-1", "status"), 2, "must be positive"),
    (("--timeout", "inf", "status"), 2, "must be positive and finite: 'inf'"),
    (("services", "add", "10.0.0.1:0", "--proxy-port", "3"), 2, "not a TCP port 1-65535: '0'"),
    # the daemon's values are checked before it touches the switch (a pipeline push would wipe
    # the services table first)
    (("run", "--cpu-port", "-1"), 2, "controller.cpu_port: -1 is not a switch port 1-511"),
    (("run", "--metrics-port", "-5"), 2, "--metrics-port: -5 is not a port (-1: none)"),
    (("--config", "/nonexistent/splicectl.toml", "status"), 2, "cannot read config file"),
    (("--device-id", "7", "status"), 1, "no device id 7"),
    (("--p4info", "/etc/hostname", "routes", "list"), 1, "not a P4Info file"),
    (("pipeline", "push", "--config", "/nonexistent.json"), 1, "cannot read device config"),
    # a file named by mistake is read up to a bound, not until memory runs out
    (("pipeline", "push", "--p4info", "/dev/zero"), 1, "cannot read P4Info /dev/zero: larger than 64 MiB"),
    (("--config", "/dev/zero", "status"), 2, "cannot read config file /dev/zero: larger than 16 MiB"),
    # TLS material checked before gRPC sees it (it would log lines of its own, then fail to connect)
    (("--tls-ca", "/etc/hostname", "status"), 1, "TLS CA /etc/hostname is not a PEM certificate"),
    (("splice", "10.0.0.5:40000-10.0.1.10:80", "--admin-socket", "/nonexistent/admin.sock"), 1,
     "no controller listening on /nonexistent/admin.sock"),
    (("run", "--no-such-option"), 2, "unrecognized arguments: --no-such-option"),
    # the argument is checked first: no controller is needed to refuse it
    (("splice", "garbage", "--admin-socket", "/nonexistent/admin.sock"), 2,
     "argument FLOW: 'garbage' is not CLIENT:PORT-SERVER:PORT"),
    (("splice", "10.0.0.5:0-10.0.1.10:80", "--admin-socket", "/nonexistent/admin.sock"), 2, "argument FLOW"),
])
def test_errors_are_one_line(env: Env, args: tuple[str, ...], code: int, fragment: str) -> None:
    env.run(*args).assert_one_line_error(code, fragment)


def test_unreachable_switch_is_one_line_and_fast() -> None:
    cmd = [*splicectl_command(), "--grpc-addr", "127.0.0.1:1", "--timeout", "3", "routes", "list"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    Run(p.returncode, p.stdout, p.stderr).assert_one_line_error(1, "cannot reach the switch at 127.0.0.1:1")


def test_config_file_supplies_the_options(env: Env, tmp_path: Path) -> None:
    toml = tmp_path / "splicectl.toml"
    toml.write_text(f'grpc-addr = "{env.addr}"\ndevice_id = 1\njson = true\n\n[controller]\nanything = 1\n')
    cmd = [*splicectl_command(), "--config", str(toml), "services", "list"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout) == {"services": []}, p.stderr
    js = tmp_path / "splicectl.json"
    js.write_text(json.dumps({"grpc_addr": env.addr, "device_id": 7}))
    p = subprocess.run([*splicectl_command(), "--config", str(js), "status"], capture_output=True, text=True,
                       timeout=30)
    Run(p.returncode, p.stdout, p.stderr).assert_one_line_error(1, "no device id 7")
    # The command line wins over the file.
    p = subprocess.run([*splicectl_command(), "--config", str(js), "--device-id", "1", "routes", "list", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout) == {"routes": []}, p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('grpc_adr = "x"\n')
    env.run("--config", str(bad), "status").assert_one_line_error(2, "unknown option 'grpc_adr'")
    bad.write_text("device_id = 'one'\n")
    env.run("--config", str(bad), "status").assert_one_line_error(2, "device_id must be int")
    bad.write_text("this is = not toml =\n")
    env.run("--config", str(bad), "status").assert_one_line_error(2, "config file")


def test_broken_tls_material_is_still_one_line(tmp_path: Path) -> None:
    """PEM-shaped but not a certificate: gRPC's core would log lines of its own on stderr before
    failing; splicectl keeps it quiet (GRPC_VERBOSITY) and says one line."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    cmd = [*splicectl_command(), "--grpc-addr", "127.0.0.1:1", "--tls-ca", str(ca), "--timeout", "2", "status"]
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    Run(p.returncode, p.stdout, p.stderr).assert_one_line_error(1, "cannot reach the switch at 127.0.0.1:1")
