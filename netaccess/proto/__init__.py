"""Sans-IO protocol codecs and state machines: bytes in, events out, no I/O and no clocks."""
