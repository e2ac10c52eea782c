"""Everything an edit touches, without Qt.

* :mod:`~engine.editing.kernels` -- brush, fill, islands: each edit is a sparse
  :class:`~engine.editing.kernels.Diff`;
* :mod:`~engine.editing.history` -- byte-capped undo / redo;
* :mod:`~engine.editing.journal` -- the crash journal, one per process
  (:mod:`~engine.editing.journal_keeper` keeps it going through disk failures);
* :mod:`~engine.editing.live_metrics` -- Dice and friends updated per diff;
* :mod:`~engine.editing.session` -- the editing session, the one path by which
  an edited mask changes (with :mod:`~engine.editing.options` and
  :mod:`~engine.editing.session_metrics`); the viewer binds it to its layers;
* :mod:`~engine.editing.refine` -- click-to-refine.
"""
