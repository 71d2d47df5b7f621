"""netaccess: network access control gateway appliance (daemon, enforcement, posture)."""

__version__ = "0.1.0"
