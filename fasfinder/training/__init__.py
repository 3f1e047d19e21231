"""Training scripts for FASFinder's own models (run as ``python -m fasfinder.training.<name>``)."""
