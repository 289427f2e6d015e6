"""Queue service of the MPP platform: visits, tickets, counters, appointments, surveys."""
