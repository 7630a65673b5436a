"""The parts of the :class:`~lamplighter.app.Lamplighter` facade that each do one job.

- :mod:`.selection`: choosing the backend.
- :mod:`.admission`: whether the backend and the checkers can honour a request.
- :mod:`.loop`: which event loop runs Lamplighter's asynchronous work, and owning one.
- :mod:`.pump`: carrying the journal (events of runs in other processes) onto the event bus,
  and delivering events to monitors where there is no loop.
- :mod:`.policies`: what scheduling a request does to an existing task (``existing=``).
- :mod:`.run_now`: instant runs (``run_now`` and its synchronous forms).
- :mod:`.cancellation`: removing tasks from the OS scheduler and the store.
- :mod:`.reporting`: the read side (task snapshots, history, the health report).
- :mod:`.os_run`: the run of a process the OS scheduler started (``handle_invocation``).
- :mod:`.housekeeping`: start-up chores (sweeping, the application's record) and starting
  for the ``lamplighter`` command.
- :mod:`.host`: the application as the parts that need it see it (a structural type).

The facade owns the state and calls these; none of them imports the facade.
"""
