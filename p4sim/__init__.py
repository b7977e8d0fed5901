"""p4sim: an embedded v1model P4 target with a P4Runtime server, standing in for BMv2."""

__version__ = "0.1.0"
