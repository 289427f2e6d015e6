"""Pure queue domain logic. No I/O."""
