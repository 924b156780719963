"""Reusable widgets of the operator console."""
