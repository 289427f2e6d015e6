"""Reporting service: projects every event into the figures the ministry reads."""
