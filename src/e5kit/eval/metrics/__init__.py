"""Metrics, separate from tasks (as in mteb): each takes labels/scores and returns a flat dict of floats."""
