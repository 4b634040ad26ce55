"""Facts: the normalised views checks read."""
