"""Batch rescoring of a data folder: chunked, resumable after a crash, on this machine or a Dask cluster.

Public API::

    rescore(options: RescoreOptions, *, fault_hook=None) -> RescoreSummary

``leadscore rescore`` is the command-line front end; ``docs/batch-rescoring.md`` describes
the run folder, the outputs and how to use an existing Dask cluster.
"""

from serving.rescore.options import RescoreOptions
from serving.rescore.run import RescoreSummary, rescore

__all__ = ["RescoreOptions", "RescoreSummary", "rescore"]
