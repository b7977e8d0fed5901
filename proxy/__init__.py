"""p4splice's host application proxy: a transparent TCP proxy that inspects the start of each
connection and then asks the controller to splice it out of the byte path (docs/proxy.md).

* ``config``     -- the TOML configuration (services, policies, limits) and its checks.
* ``netsetup``   -- policy routing that delivers intercepted connections to local sockets.
* ``sockets``    -- transparent sockets, queue-depth ioctls, abortive close, readiness waits.
* ``http``       -- bounded HTTP request-head parsing and header rewriting.
* ``policy``     -- per-service policies: inspect, after-bytes, never, rewrite.
* ``relay``      -- one proxied connection: two fixed-buffer pumps and their byte counts.
* ``splice``     -- the proxy's side of the switch-over (design note section 3).
* ``controller`` -- the link to the controller (hello, register, heartbeats, reconnects).
* ``metrics``    -- counters, as a dict and optionally for Prometheus.
* ``server``     -- listeners, connection limits, shutdown.
* ``cli``        -- ``splice-proxy --config proxy.toml``.
"""

__version__ = "0.1.0"
