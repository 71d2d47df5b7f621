"""trio tasks that wire the pure layers to the world: sockets, timers, the supervisor."""
