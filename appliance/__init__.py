"""The appliance box: the `appliance` admin CLI, and later updates, health and backup."""
