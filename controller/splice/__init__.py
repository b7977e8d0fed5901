"""The splice core, free of I/O: sequence arithmetic, option negotiation, the handshake machine."""
