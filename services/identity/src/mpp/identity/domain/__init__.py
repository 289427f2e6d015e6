"""Pure identity domain logic: the citizen record, its consistency rules and the verification decision.
No I/O, no framework, no settings."""
