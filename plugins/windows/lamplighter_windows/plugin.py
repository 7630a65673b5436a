"""Entry point of ``lamplighter-windows`` (group ``lamplighter``).

This distribution does not contribute any hook implementation yet, so Lamplighter loads it
and finds nothing to offer; it never claims a backend, checker or trigger it cannot honour.
"""
