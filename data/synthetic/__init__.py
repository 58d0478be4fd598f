"""Synthetic CRM history of a Chinese SME B2B funnel, with its ground truth kept apart.

``generate_history(GeneratorConfig(leads=..., seed=...), out_dir)`` writes a data folder in
the canonical layout plus ``ground_truth/``. docs/synthetic-history.md describes the story.
"""

from data.synthetic.config import GeneratorConfig
from data.synthetic.generate import GenerationSummary, generate_history

__all__ = ["GenerationSummary", "GeneratorConfig", "generate_history"]
