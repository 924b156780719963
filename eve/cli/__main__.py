"""`python -m eve.cli` = `eve`."""

from eve.cli import main

main()
