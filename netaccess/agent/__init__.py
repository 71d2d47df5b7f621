"""The endpoint IMC agent: collectors, PT-TLS client, self-update; imports proto only."""
