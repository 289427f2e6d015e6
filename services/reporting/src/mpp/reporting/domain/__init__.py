"""Pure reporting logic: which event counts towards which figure, and on which local day."""
