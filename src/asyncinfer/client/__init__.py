"""Clients: load clients for any service and the InferRunner API (local and remote managers)."""
