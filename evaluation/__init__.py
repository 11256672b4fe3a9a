"""Evaluation harnesses (tooling, never imported by the runtime): tracking scored against other trackers."""
