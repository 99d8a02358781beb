"""Reliability campaigns: run as `python -m reliability.campaigns [--short]`."""
