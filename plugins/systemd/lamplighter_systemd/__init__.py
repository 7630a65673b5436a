"""Lamplighter plugin: systemd user timers and services (+ .path units)."""
