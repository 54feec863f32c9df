"""CLI commands on records: put, get, delete, list, changes, scripts, demo."""
