"""The queue domain: pure rules for ordering, tickets, visits and counters (no I/O)."""
