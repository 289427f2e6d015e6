"""Shared runtime used by every MPP service: the same reliability, security and telemetry everywhere."""
