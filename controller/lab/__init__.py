"""The lab: the whole mission on one machine -- unmodified Linux clients and servers in network
namespaces around a switch (p4sim or BMv2), the controller on its CPU port and the application proxy
on a host port -- shared by ``make demo``, ``make e2e`` and the end-to-end tests.

* ``topology``: ``Lab`` brings everything up in one call and tears it down on exit, signal or failure.
* ``traffic``: an asyncio HTTP-ish server in the server namespaces and clients with sha256 of
  everything sent and received.
* ``demo``: the scripted scenario and its report (``python -m p4splice.controller.lab.demo``).
* ``impair``: the impairment relay (loss, reordering, delay on a cable) where netem is missing.
* ``offload`` and ``haproxy``: ``make bench-offload``, the proxy host's CPU spliced against a plain
  proxy and HAProxy (``python -m p4splice.controller.lab.offload``).
"""

from .topology import Host, Lab, LabError, LabSpec, Service

__all__ = ["Host", "Lab", "LabError", "LabSpec", "Service"]
