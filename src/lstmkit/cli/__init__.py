"""lstmkit.cli."""
