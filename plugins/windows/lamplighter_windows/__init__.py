"""Lamplighter plugin: Windows Task Scheduler 2.0."""
