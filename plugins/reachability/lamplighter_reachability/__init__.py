"""Lamplighter plugin: network constraint checker (connected, unmetered, roaming)."""
