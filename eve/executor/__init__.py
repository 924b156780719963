"""Run one request through a Claude Code variant: resolve, prepare, spawn, parse, report."""
