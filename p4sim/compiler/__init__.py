"""p4sim's P4_16 compiler: preprocessing, parsing, checking and lowering to the device config."""
