"""lstmkit.io."""
