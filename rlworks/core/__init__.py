"""Typed records, seeding, the registry of named components and configuration."""
