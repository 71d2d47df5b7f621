"""TCG TNC / IETF NEA posture protocols, sans-IO: PT-TLS (RFC 6876) carries PB-TNC batches
(RFC 5793), whose PB-PA messages carry PA-TNC messages (RFC 5792). Bytes in, events out;
no sockets and no clocks (time is passed in)."""
