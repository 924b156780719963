"""eve-horizon: run AI coding agents (Claude Code variants) as queued jobs on PostgreSQL.

The core package holds everything both daemons and the CLI share: settings, errors,
the database layer, the queue, auth helpers. It never imports the web stack
(Litestar) or the TUI stack (Textual) so that `eve --help` and the worker stay light.
"""

__version__ = "0.1.0"
