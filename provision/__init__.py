"""Runs inside a lab node as root: the tutorial's steps as idempotent plans (standard library only)."""
