"""TCG TNC / IETF NEA posture protocols, sans-IO: PT-TLS (RFC 6876) carries PB-TNC batches
(RFC 5793), whose PB-PA messages carry PA-TNC messages (RFC 5792). Bytes in, events out;
no sockets and no clocks (time is passed in)."""

# Our vendor attributes register their codecs with pa.py when imported: do it once here, so
# every decoder knows them.
from netaccess.proto.tnc import vendor as _vendor  # noqa: F401
