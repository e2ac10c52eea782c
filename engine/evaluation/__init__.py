"""Measuring methods against ground truth.

* :mod:`~engine.evaluation.compare` -- several results on one image: a
  comparison table and a montage;
* :mod:`~engine.evaluation.benchmark` -- the evaluation report (case study,
  parameter sweeps, robustness grid, figure);
* :mod:`~engine.evaluation.tables` -- the one Markdown/CSV table writer both
  use.

The metrics themselves are pure functions in :mod:`engine.core.metrics`, and
so is the one averaging rule (:func:`~engine.core.metrics.finite_mean`: the
mean of the finite values, with the count left out shown in every table).
"""
