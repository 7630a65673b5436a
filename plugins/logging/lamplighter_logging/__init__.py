"""Lamplighter plugin: structlog monitor."""
