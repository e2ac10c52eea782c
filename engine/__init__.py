"""Delineo engine: volumes, I/O, segmentation methods, models, metrics and jobs.

Plain Python, numpy and torch. Nothing here imports Qt; everything the viewer
does can be done from a script or the ``delineo-engine`` CLI.
"""

__version__ = "0.1.0"
