"""Contract tests: every ``Store`` implementation must pass them unchanged (see ``conftest.py``)."""
