"""Runs inside a lab node as root: the tutorial's steps, idempotent, driven by the node's plan (standard
library only)."""
