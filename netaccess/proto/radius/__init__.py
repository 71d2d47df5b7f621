"""Sans-IO RADIUS (RFC 2865, 2866, 2868, 2869, 3579, 5176): the packet and attribute codec,
the hiding and authenticators keyed by the shared secret, FreeRADIUS-format dictionaries and
the RFC 5080 duplicate cache. Bytes and a `now` in, values and bytes out."""
