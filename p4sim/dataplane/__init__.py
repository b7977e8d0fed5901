"""p4sim's packet side: ports, packet I/O, and the algorithms behind v1model's externs."""
