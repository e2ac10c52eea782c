"""The foundation every other part of the engine stands on.

* :mod:`~engine.core.volume` -- ``Volume`` / ``LabelMap`` / ``LabelTable`` in
  canonical RAS+;
* :mod:`~engine.core.errors` -- typed, one-line errors;
* :mod:`~engine.core.params` -- parameter dataclasses with units and ranges;
* :mod:`~engine.core.jobs` -- progress callbacks and cancel tokens;
* :mod:`~engine.core.events` -- plain events (weakly held bound methods,
  handles, a failing listener never stops the others) for Qt-free models;
* :mod:`~engine.core.device`, :mod:`~engine.core.memory` -- torch device
  choice and peak-memory sampling;
* :mod:`~engine.core.steps` -- the contract of a segmentation step
  (``MethodSpec``, ``SegmentationResult``), below both the classical methods
  and the networks;
* :mod:`~engine.core.metrics` -- overlap and distance metrics (pure
  functions), used by editing, training and evaluation alike.
* :mod:`~engine.core.morphology` -- connected components, hole filling and
  distance transforms of binary masks (cc3d, fill_voids, edt: scipy.ndimage's
  results, faster on whole heads);
* :mod:`~engine.core.tensors` -- small torch numerics (quantiles, Gaussian
  blur, the networks' robust intensity scaling) shared by data, models and
  methods.

Nothing here imports another part of Delineo.
"""
