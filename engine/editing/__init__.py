"""Everything an edit touches, without Qt.

* :mod:`~engine.editing.kernels` -- brush, fill, islands: each edit is a sparse
  :class:`~engine.editing.kernels.Diff`;
* :mod:`~engine.editing.history` -- byte-capped undo / redo;
* :mod:`~engine.editing.journal` -- the crash journal;
* :mod:`~engine.editing.live_metrics` -- Dice and friends updated per diff;
* :mod:`~engine.editing.refine` -- click-to-refine.
"""
