"""lstmkit.tasks."""
