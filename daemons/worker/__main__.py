"""`python -m eve.daemons.worker` = `eve worker run`."""

from eve.daemons.worker.main import cli

cli()
