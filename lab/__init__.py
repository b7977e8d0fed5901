"""The lab: the whole mission on one machine -- unmodified Linux clients and servers in network
namespaces around a switch (p4sim or BMv2), the controller on its CPU port and the application proxy
on a host port -- the testbed that ``make run``, ``make demo``, ``make e2e``, ``make bench-offload``
and the end-to-end tests stand on. It uses the controller and p4sim as a user would; neither of
them imports it.

* ``topology``: ``Lab`` brings everything up in one call and tears it down on exit, signal or failure.
* ``traffic``: an asyncio HTTP-ish server in the server namespaces and clients with sha256 of
  everything sent and received.
* ``demo``: the scripted scenario and its report (``python -m p4splice.lab.demo``), with
  ``capture`` (the handshakes as each host saw them) and ``timeline`` (one connection as an SVG).
* ``live``: ``make run`` / ``make stop``, the lab left running to poke at (``python -m p4splice.lab.live``).
* ``impair``: the impairment relay (loss, reordering, delay on a cable) where netem is missing.
* ``haproxy``: HAProxy in the proxy host's namespace, the offload benchmark's baseline
  (the benchmark itself is ``p4splice.bench.offload``).
* ``netdev``: network namespaces and veth pairs, for the lab and for every suite and runner that
  puts a switch on veths (PTF, p4sim's, the controller's and the proxy's tests).
* ``p4sim_demo``: ``make demo-p4sim``, an IPv4 router in P4 on p4sim between two namespaces.
"""

from .topology import Host, Lab, LabError, LabSpec, Service

__all__ = ["Host", "Lab", "LabError", "LabSpec", "Service"]
