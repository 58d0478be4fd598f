"""leadscore: score sales leads with machine learning and route them to the right rep.

The stages live in the top-level packages ``data``, ``features``, ``training`` and
``serving``; this package holds what they share (errors, locale texts, settings) and the CLI.
"""

__version__ = "0.1.0"
