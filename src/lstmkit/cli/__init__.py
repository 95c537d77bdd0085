"""The ``lstmkit`` command line."""
