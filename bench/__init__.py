"""The benchmarks (``make bench``, ``make bench-offload``, ``make bench-flood``): figures, not tests;
they measure and do not assert. Record what they print in docs/benchmarks.md.

* ``p4sim``: the embedded target's forwarding rate, P4Runtime write/read rates and table memory
  (``python -m p4splice.bench.p4sim``).
* ``controller``: splice install latency, handshakes per second, P4Runtime writes
  (``python -m p4splice.bench.controller``).
* ``forwarding``: splice.p4's forwarding rate over veths on p4sim or BMv2
  (``python -m p4splice.bench.forwarding``).
* ``offload``: the proxy host's CPU spliced against a plain proxy and HAProxy, in the lab
  (``python -m p4splice.bench.offload``).
* ``flood``: a SYN flood from spoofed sources, idle StreamChannels and undecodable P4Runtime
  requests against the lab's switch and controller (``python -m p4splice.bench.flood``,
  ``make bench-flood``).

The benchmarks stand on the lab (``p4splice.lab``), the controller and p4sim; none of those
imports them.
"""
