"""lstmkit.train."""
