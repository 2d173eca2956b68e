"""Scheduling: how a model version's requests reach its backend."""
