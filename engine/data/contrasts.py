"""The sequences' tissue contrasts of the synthetic images: names and class means.

Plain data, apart from :mod:`engine.data.phantom` (which renders with them) so that
the command line knows the names without importing torch.
"""

from __future__ import annotations

__all__ = ["CONTRASTS", "CONTRAST_MEANS", "FLAIR_MEANS", "sequence_means"]

#: Contrast names understood by :func:`engine.data.phantom.synthesize_phantom` and the
#: ``synth`` command.
CONTRASTS = ("t1", "t2", "pd", "random")

#: Class means (CSF, GM, WM) relative to the brightest tissue. The T1 values are
#: the template's own (median of voxels with > 95 % of one tissue: 67, 164, 223).
CONTRAST_MEANS: dict[str, tuple[float, float, float]] = {
    "t1": (0.30, 0.735, 1.0),
    "t2": (1.0, 0.62, 0.45),
    "pd": (1.0, 0.84, 0.70),
}

#: Class means (CSF, GM, WM) of a FLAIR-like image, relative to the brightest tissue: CSF
#: suppressed, gray matter brighter than white matter (lesion pool volumes, synthetic heads).
FLAIR_MEANS: tuple[float, float, float] = (0.15, 1.0, 0.78)


def sequence_means(contrast: str) -> tuple[float, float, float]:
    """Class means (CSF, GM, WM) of *contrast*: one of :data:`CONTRAST_MEANS`, or
    ``"flair"`` (:data:`FLAIR_MEANS`)."""
    return FLAIR_MEANS if contrast == "flair" else CONTRAST_MEANS[contrast]
