"""Command-line tools (runner, complexity, checkpoint conversion, tiny datasets); importable for tests."""
