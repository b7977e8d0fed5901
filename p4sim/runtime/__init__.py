"""p4sim's control-plane side: switch state (tables, externs, PRE) and the P4Runtime server."""
