"""Lamplighter plugin: asyncio backend owned by the library; the embedded default."""
