"""Small shared helpers: atomic file writes, config dataclasses, seeding, provenance."""
