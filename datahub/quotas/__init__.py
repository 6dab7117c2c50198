"""Quota policies and usage: admission at the gateway, limits at spawn (issue 5)."""
