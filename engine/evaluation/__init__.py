"""Measuring methods against ground truth.

* :mod:`~engine.evaluation.compare` -- several results on one image: a
  comparison table and a montage;
* :mod:`~engine.evaluation.benchmark` -- the evaluation report (case study,
  parameter sweeps, robustness grid, figure).

The metrics themselves are pure functions in :mod:`engine.core.metrics`.
"""
