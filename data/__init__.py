"""Training corpora and the code that fetches them (see data/README.md)."""
