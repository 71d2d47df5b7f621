"""Pure decisions: the endpoint model, inventory learning, roles and (later) Host Checker."""
