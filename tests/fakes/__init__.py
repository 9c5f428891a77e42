"""Fake servers (Discord, Reddit) that the real client libraries talk to in tests."""
