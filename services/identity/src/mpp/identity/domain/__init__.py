"""Pure identity domain logic. No I/O."""
