"""Cluster-wide provider rate limits, shared by every worker through Redis."""
