"""lstmkit.data."""
