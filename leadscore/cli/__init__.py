"""The ``leadscore`` command line: a thin layer over each stage's public functions."""
