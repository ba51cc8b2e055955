"""The runtime shell (I/O): the worker loop, intake of commands, driving runs and their tools,
committing steps, deadline timers, rebalances and restores."""
