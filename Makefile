# p4splice: build, run and test the splice data plane, its controller and the embedded target.
#   make demo            the main job (README's first command)
#   make test            every test suite (README's second command)
#   make build           compile p4src/ for $(TARGET) into build/
#   make ptf             the data plane's PTF suite on $(TARGET)
#   make bench           benchmarks (figures go to docs/benchmarks.md by hand)
#   make bench-flood     a SYN flood, idle P4Runtime streams and garbage requests against the lab
#   make run / stop      a live lab to poke at (namespaces c1, s1, proxy...), up until Ctrl-C / stop it
#   make clean           stop it and remove build outputs
# TARGET=p4sim (default, the embedded target) or TARGET=bmv2 (p4c-bm2-ss + simple_switch_grpc on PATH).

SHELL := /bin/bash
TARGET ?= p4sim
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
P4SH_VENV := .venv-p4sh
BUILD := build
LOGS := logs
PYTEST_ARGS ?=
# compile-time constants of p4src/ (p4src/include/headers.p4), NAME=VALUE separated by spaces,
# passed to either compiler as -DNAME=VALUE, e.g. make build TARGET=bmv2 P4DEFINES=FLOWS_SIZE=65536
P4DEFINES ?=
P4DEFS := $(foreach d,$(P4DEFINES),-D $(d))

APT_NEEDS := ip:iproute2 ethtool:ethtool cpp:cpp tc:iproute2 ping:iputils-ping openssl:openssl

.PHONY: all setup deps venv p4sh-venv build demo test ptf test-p4sim test-controller test-integration test-e2e test-bmv2 test-parity difftest fuzz lint bench run stop clean distclean

all: build

# --- set-up -----------------------------------------------------------------------------------
setup: deps venv p4sh-venv

# Debian packages, installed only where the command is missing (root on a fresh Debian machine);
# setup/apt-install.sh waits, bounded, while another apt process holds the lock.
deps:
	@missing=""; for pair in $(APT_NEEDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || [ -x /sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  setup/apt-install.sh $$missing; \
	fi

venv: $(VENV)/.installed

# protobuf's compiled runtime: p4runtime's modules are regenerated for it (p4sim/protoregen.py).
# p4runtime-shell is not in this venv (its protobuf pin would undo that): see p4sh-venv.
# setuptools warns of every editable install whose packages map to other folders (p4splice.controller
# is controller/, ...) that a folder named as the package could shadow it: none is (there is no
# p4splice/ folder), so the ten-line notice is left out of the set-up's output.
PIP_QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"
$(VENV)/.installed: pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@$(VPY) -m pip uninstall -q -y p4runtime-shell >/dev/null 2>&1 || true
	$(PIP_QUIET_EDITABLE) $(VPY) -m pip install -q -e '.[test,protogen]' 2>&1 | grep -v '^WARNING: Location' || true
	$(VPY) -m p4sim.protoregen
	$(VPY) -c 'import p4sim, p4.v1.p4runtime_pb2, scapy, ptf'
	@touch $@

# p4runtime-shell with the protobuf it pins, in a venv of its own: the interop test and p4sim's
# demo drive it through p4sim/shellbridge.py
p4sh-venv: $(P4SH_VENV)/.installed

$(P4SH_VENV)/.installed:
	@test -x $(P4SH_VENV)/bin/python || $(PYTHON) -m venv $(P4SH_VENV)
	$(P4SH_VENV)/bin/python -m pip install -q p4runtime-shell==0.0.6 2>&1 | grep -v '^WARNING: Location' || true
	$(P4SH_VENV)/bin/python -c 'import p4runtime_sh.shell'
	@touch $@

# --- build ------------------------------------------------------------------------------------
# p4src/splice.p4 for $(TARGET): build/splice.p4info.txtpb plus build/splice.p4sim.json (p4sim)
# or build/splice.json (bmv2, with p4c-bm2-ss from PATH; see docs/bmv2.md)
build: setup
	@mkdir -p $(BUILD) $(LOGS)
	$(VPY) -m ptf_tests.run --target $(TARGET) --build-dir $(BUILD) $(P4DEFS) --build-only

# --- main job ---------------------------------------------------------------------------------
.PHONY: demo-p4sim e2e

# the whole mission: clients, a server and the proxy host around the switch, real kernel TCP,
# a report per connection, the proxy killed mid-transfer (lab/, docs/e2e.md)
demo: build
	TARGET=$(TARGET) $(VPY) -m p4splice.lab.demo --build-dir $(BUILD) --log-dir $(LOGS)

# p4sim's own demo: an IPv4 router in P4 between two namespaces (lab/p4sim_demo.py)
demo-p4sim: setup
	@mkdir -p $(BUILD) $(LOGS)
	$(VPY) -m p4splice.lab.p4sim_demo --build-dir $(BUILD) --log-dir $(LOGS)

# the end-to-end suite at full size: 100 MB each way per policy, 1,000 connections
e2e: build
	TARGET=$(TARGET) P4SPLICE_E2E=heavy $(VENV)/bin/pytest -q tests/e2e $(PYTEST_ARGS)

# --- tests ------------------------------------------------------------------------------------
# the PTF suite first, so that pytest's summary is the last line of `make test`
test: setup lint ptf
	$(VENV)/bin/pytest -q tests $(PYTEST_ARGS)

# PTF packet tests of the data plane: veth pairs, the switch of $(TARGET), ptf, teardown
ptf: setup
	@mkdir -p $(BUILD) $(LOGS)
	$(VPY) -m ptf_tests.run --target $(TARGET) --build-dir $(BUILD) --log-dir $(LOGS) $(P4DEFS)

test-p4sim: setup
	$(VENV)/bin/pytest -q tests/p4sim $(PYTEST_ARGS)

test-controller: setup
	$(VENV)/bin/pytest -q tests/controller $(PYTEST_ARGS)

# the controller's integration scenarios on the switch of $(TARGET) (p4sim or bmv2 from PATH) over
# veth pairs; a missing tool is a one-line error (see tests/controller/switches.py)
test-integration: setup
	P4SPLICE_SWITCH=$(TARGET) $(VENV)/bin/pytest -q tests/controller -m integration $(PYTEST_ARGS)

# the end-to-end suite at make test's sizes on the switch of $(TARGET)
test-e2e: build
	TARGET=$(TARGET) $(VENV)/bin/pytest -q tests/e2e $(PYTEST_ARGS)

# every suite that runs a switch, on BMv2 (p4c-bm2-ss and simple_switch_grpc on PATH): the PTF
# suite, the integration scenarios, the end-to-end suite, the demo, p4sim's programs against BMv2
# (the parity tests make test skips without BMv2) and the difftest (CI runs it where BMv2 is)
test-bmv2:
	$(MAKE) ptf TARGET=bmv2
	$(MAKE) test-integration TARGET=bmv2
	$(MAKE) test-e2e TARGET=bmv2
	$(MAKE) demo TARGET=bmv2
	$(MAKE) test-parity
	$(MAKE) difftest

# p4sim's own test programs run on BMv2 too, frame for frame (they skip where BMv2 is not on PATH)
test-parity: setup
	$(VENV)/bin/pytest -q tests/p4sim/test_bmv2_parity.py tests/p4sim/test_p4c_compat.py tests/difftest $(PYTEST_ARGS)

# p4sim against BMv2 frame for frame (tests/difftest/run.py): seeded cases of splice.p4 and the
# programs of tests/p4sim/programs on both switches, every difference printed; make test runs a
# short one where BMv2 is on PATH. SEED=N for another run, DIFFTEST_ARGS="--cases 1000" for more.
SEED ?= 1
DIFFTEST_ARGS ?=
difftest: setup
	$(VPY) -m tests.difftest.run --seed $(SEED) $(DIFFTEST_ARGS)

# the fuzz suite (tests/fuzz) at length: make test runs a bounded number of examples of each
FUZZ_EXAMPLES ?= 5000
fuzz: setup
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -q tests/fuzz $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check $(wildcard p4sim controller proxy lab bench ptf_tests tests)

# --- benchmarks -------------------------------------------------------------------------------
.PHONY: bench-deps bench-offload bench-flood
OFFLOAD_ARGS ?=
OFFLOAD = TARGET=$(TARGET) $(VPY) -m p4splice.bench.offload --build-dir $(BUILD) --log-dir $(LOGS) $(OFFLOAD_ARGS)

# bench/: p4sim's own, splice.p4's forwarding over veths, the controller's, then the offload
# benchmark (docs/benchmarks.md). The switch figures come in the same rows for both targets: with
# TARGET=bmv2 the forwarding and the controller's run against simple_switch_grpc on veths (the
# controller's with a program built with a flows table big enough for the run and without ageing,
# which BMv2 can abort on under such load: docs/bmv2.md; build/bench), and
# the p4sim bench runs the controller's against a p4sim process on veths as well as embedded.
# p4sim's own bench does not apply to BMv2.
BENCH_ARGS ?=
FORWARDING = $(VPY) -m p4splice.bench.forwarding --build-dir $(BUILD) --log-dir $(LOGS)
bench: build bench-deps
ifeq ($(TARGET),bmv2)
	$(FORWARDING) --target bmv2
	$(VPY) -m ptf_tests.run --target bmv2 --build-dir $(BUILD)/bench -D FLOWS_SIZE=65536 -D FLOWS_IDLE_TIMEOUT=0 --build-only
	$(VPY) -m p4splice.bench.controller --target bmv2 --build-dir $(BUILD)/bench --log-dir $(LOGS) $(BENCH_ARGS) && $(OFFLOAD)
else
	$(VPY) -m p4splice.bench.p4sim && $(FORWARDING) --target p4sim
	$(VPY) -m p4splice.bench.controller $(BENCH_ARGS)
	$(VPY) -m p4splice.bench.controller --target p4sim --log-dir $(LOGS) --skip floor --skip writes $(BENCH_ARGS)
	$(OFFLOAD)
endif

# What only the benchmarks need: Debian's haproxy (the offload baseline; where it cannot be
# installed the benchmark skips it with a note) and matplotlib (the '.[bench]' extra, for the plots).
bench-deps: setup
	@if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "note: haproxy is missing and apt-get needs root: the offload benchmark skips it" >&2; \
	  else echo "installing Debian package: haproxy"; \
	    setup/apt-install.sh haproxy || \
	    echo "note: haproxy could not be installed: the offload benchmark skips it" >&2; fi; fi
	@$(VPY) -c 'import matplotlib' 2>/dev/null || \
	  { $(PIP_QUIET_EDITABLE) $(VPY) -m pip install -q -e '.[bench]' 2>&1 | grep -v '^WARNING: Location' || true; }

# proxy-host CPU per connection and per GB: spliced, never-splice, HAProxy with and without splice()
bench-offload: build bench-deps
	$(OFFLOAD)

# a SYN flood from spoofed sources at rising rates against a proxied service, with both handshake
# designs (handshakes = "switch" and "controller"), while a real client connects in a loop; 1,000
# idle StreamChannels and 10,000 undecodable requests per method against the switch's P4Runtime
# server (bench/flood.py, docs/benchmarks.md "SYN flood and idle streams"); about 8 minutes.
# FLOOD_ARGS="--parts flood --handshakes controller" for a part, or --rates, --step-s ...
FLOOD_ARGS ?=
bench-flood: build
	TARGET=$(TARGET) $(VPY) -m p4splice.bench.flood --target $(TARGET) --build-dir $(BUILD) --log-dir $(LOGS) $(FLOOD_ARGS)

# --- housekeeping -----------------------------------------------------------------------------
# the lab of docs/e2e.md, up until Ctrl-C or make stop from another terminal (lab/live.py;
# RUN_ARGS=--detach returns once it is up): how to use it is printed; SWITCH_LOG_LEVEL=debug|trace
# for the switch's log, PCAP=1 for per-port pcaps in logs/pcap
SWITCH_LOG_LEVEL ?= info
PCAP ?=
RUN_ARGS ?=
run: build
	$(VPY) -m p4splice.lab.live --target $(TARGET) --build-dir $(BUILD) --log-dir $(LOGS) \
	  --switch-log-level $(SWITCH_LOG_LEVEL) $(if $(PCAP),--pcap-dir $(LOGS)/pcap) $(RUN_ARGS)

# only what make run started in this checkout (its pid, checked against its command line), and
# what a killed lab left in this checkout's build/
stop:
	@if [ -x $(VPY) ]; then $(VPY) -m p4splice.lab.live --stop --build-dir $(BUILD) --log-dir $(LOGS); \
	else echo "make stop: nothing is set up here"; fi

clean: stop
	rm -rf $(BUILD) $(LOGS)

distclean: clean
	rm -rf $(VENV) $(P4SH_VENV)
