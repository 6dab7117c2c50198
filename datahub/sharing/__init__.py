"""Shared query notebooks: publish, version, share, view safely, open a copy (issue 6)."""
