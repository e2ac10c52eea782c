"""Data: the demo brain and the synthetic images made from its tissue maps.

* :mod:`~engine.data.mni` -- the MNI ICBM152 2009a template (via the nilearn
  wheel), its ground truth and the held-out slab;
* :mod:`~engine.data.phantom` -- whole-volume phantoms with their ground truth
  and the training blocks cut around the held-out slab;
* :mod:`~engine.data.fields` -- the intensity non-uniformity field of both;
* :mod:`~engine.data.contrasts` -- the sequences' contrast names and class means
  (plain data, no torch);
* :mod:`~engine.data.synthesis` -- the networks' training patches, drawn on
  the fly.
"""
