"""The vmcore fixture pipeline: build.py, truth.py, fixtures.py (see each module)."""
