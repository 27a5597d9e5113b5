"""Queued and scheduled jobs."""
