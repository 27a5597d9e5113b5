"""connectors (see docs/architecture.md): built by its own issue."""
