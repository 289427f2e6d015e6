"""Pure licensing domain: the application aggregate and its rules. No I/O."""
