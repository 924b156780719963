"""`eve slack run`: Socket Mode listeners and the Slack delivery loop."""
