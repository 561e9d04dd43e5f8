"""The exercise tests (a package, so that this folder's conftest.py is registered
under its own name and does not shadow tests/conftest.py)."""
