"""p4splice's controller: a P4Runtime control plane that runs claim 1's handshake and splices."""

__version__ = "0.1.0"
