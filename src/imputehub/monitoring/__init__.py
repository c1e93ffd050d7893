"""Monitoring: shared counters, Prometheus exposition, the audit log and rate limits."""
