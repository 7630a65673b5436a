"""Lamplighter plugin: launchd LaunchAgents."""
