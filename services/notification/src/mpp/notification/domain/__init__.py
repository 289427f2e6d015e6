"""Pure notification domain logic. No I/O."""
