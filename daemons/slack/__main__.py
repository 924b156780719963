"""`python -m eve.daemons.slack` = `eve slack run`."""

from eve.daemons.slack.main import cli

cli()
