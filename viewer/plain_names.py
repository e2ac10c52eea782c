"""Plain names of the methods, pipelines, steps and parameters, for people new to them.

The engine names things as its code and the literature do (``cnn+rd+ac``,
``tta``, "eq. 30-31", units in "t.u."). The viewer shows a plain name and a
one-line explanation instead, and keeps the technical name and summary in the
tooltip, so that nothing is lost for those who know it. Every name the
engine can list has an entry here (tests/viewer/test_first_reader.py checks
it); a new method or parameter without one shows its technical name.
"""

from __future__ import annotations

import re

__all__ = [
    "METHOD_NAMES",
    "PARAM_NAMES",
    "PIPELINE_NAMES",
    "method_label",
    "method_tooltip",
    "param_help",
    "param_label",
    "pipeline_label",
    "pipeline_tooltip",
    "plain_summary",
    "plain_unit",
]

#: Method / step name -> (plain name, what it does in plain words).
METHOD_NAMES: dict[str, tuple[str, str]] = {
    "reaction_diffusion": (
        "Reaction-diffusion",
        "Each tissue spreads from the voxels whose brightness fits it and competes with the "
        "others until one tissue wins every voxel."),
    "energy": (
        "Smoothing, then brightness groups",
        "Smooths the image while keeping its edges, then sorts the voxels into tissues by "
        "brightness."),
    "active_contour": (
        "Active contour",
        "Tissue borders start at brightness thresholds and move to the image edges, kept "
        "smooth."),
    "otsu": (
        "Brightness thresholds (Otsu)",
        "Splits the brain into tissues at the brightness levels that separate them best. "
        "A simple baseline."),
    "gmm": (
        "Brightness mixture with neighbour agreement",
        "Models each tissue's brightness as a bell curve and prefers voxels to agree with "
        "their neighbours. A classic baseline."),
    "unet": (
        "U-Net network",
        "A small neural network (a plain U-Net) trained on synthetic brain images."),
    "delineo": (
        "Delineo network",
        "Delineo's own neural network, trained on synthetic brain images."),
    "delineo_lesion_varied": (
        "Delineo network with lesion output",
        "Delineo's neural network trained also on synthetic whole heads and lesions: it "
        "labels tissue, and a Find lesions step after it uses its lesion output."),
    "brain_mask": (
        "Brain extraction",
        "Finds the inside of the skull (brain and the fluid around it) in a whole head, so "
        "that scalp, skull, eyes and neck are never labelled as tissue. Uses the deepbet "
        "network."),
    "rd_regularize": (
        "Reaction-diffusion refinement",
        "Smooths the network's tissue probabilities by letting the tissues spread and "
        "compete."),
    "ac_refine": (
        "Active-contour refinement",
        "Moves the tissue borders to the image edges, kept smooth."),
    "largest_component": (
        "Keep the largest brain component",
        "Drops labelled pieces not connected to the brain."),
    "small_islands": (
        "Remove small islands",
        "Gives small isolated pieces the label around them."),
    "fill_holes": (
        "Fill holes",
        "Fills holes enclosed by the brain."),
    "lesions": (
        "Find lesions",
        "Two networks mark lesions (label 4) inside the brain, by their average (one of "
        "them may be the tissue network before it). "
        "They learnt from synthetic lesions only."),
}

#: Named pipelines -> plain name (one-method pipelines use the method's name).
PIPELINE_NAMES: dict[str, str] = {
    "head": "Whole head: brain extraction, network, lesions",
    "head+delineo": "Whole head: brain extraction, then delineo (no lesions)",
    "head+gmm": "Whole head: brain extraction, then brightness mixture",
    "cnn": "Network (brain already extracted)",
    "cnn+rd": "Network, then reaction-diffusion refinement",
    "cnn+rd+ac": "Network, then reaction-diffusion and active-contour refinement",
    "unet": "U-Net network",
    "head+lesions": "Whole head: brain extraction, delineo, then lesions",
    "cnn+lesions": "Network, then lesions (brain already extracted)",
}

#: Parameter name -> (plain name, what it does in plain words).
PARAM_NAMES: dict[str, tuple[str, str]] = {
    "diffusion": ("Spreading (diffusion)", "How fast each tissue spreads to its neighbours; "
                  "more gives smoother regions."),
    "alpha": ("Growth rate", "How fast a tissue takes a voxel that fits it."),
    "beta": ("Competition", "How strongly tissues push each other out; above the growth rate "
             "one tissue wins each voxel."),
    "dt": ("Time step", "Size of one step of the simulation; too large makes it unstable."),
    "iterations": ("Iterations", "How many steps to run; more is slower and goes further."),
    "contrast": ("Image contrast", "T1: fluid dark, white matter bright; T2: the reverse."),
    "eta": ("Step size", "Size of one smoothing step; too large makes it unstable."),
    "lam": ("Smoothness", "How much to smooth against keeping the image as it is."),
    "mu": ("Border smoothness", "How strongly the borders are kept smooth (curvature)."),
    "nu": ("Pull towards edges", "How strongly the borders are drawn to image edges."),
    "region": ("Pull of region brightness", "How strongly each side of a border is pushed "
               "towards its tissue's brightness."),
    "edge_scale": ("Edge sensitivity", "How sharp a brightness change counts as an edge."),
    "smoothing": ("Pre-smoothing", "Blur applied before looking for edges (against noise)."),
    "band": ("Working band", "How far from a border (in voxels) the computation runs; only "
             "speed depends on it."),
    "reinit_every": ("Reshape every", "Iterations between clean-ups of the moving border."),
    "seed_radius": ("Start size", "Radius of the small sphere a click starts from."),
    "bins": ("Histogram bins", "How finely brightness levels are searched."),
    "mrf_beta": ("Neighbour agreement", "How much neighbours should share a tissue (0: not "
                 "at all)."),
    "tta": ("Test-time augmentation (flips)", "Also predict the left-right mirrored image and "
            "average both: a little better, twice as slow."),
    "batch_size": ("Slices per batch", "How many slices the network sees at once; more is "
                   "faster and needs more memory."),
    "precision": ("Arithmetic", "Number format of the network: auto uses the faster "
                  "bfloat16 on a GPU or a CPU that computes it natively, float32 elsewhere; "
                  "the labels differ in a few border voxels."),
    "min_size_mm3": ("Smallest piece kept", "Pieces of a label smaller than this take the "
                     "label around them."),
    "max_hole_mm3": ("Largest hole filled", "Holes inside the brain up to this size are "
                     "filled."),
    "threshold": ("Inside-the-skull threshold", "How sure the network must be that a voxel "
                  "is inside the skull; lower keeps more."),
    "min_probability": ("Lesion certainty", "How sure the lesion networks must be, on "
                        "average, that a voxel is lesion; lower finds more, and more false "
                        "alarms."),
    "outline_probability": ("Lesion outline certainty", "Each lesion found is outlined out "
                            "to where the networks' average certainty falls below this; "
                            "lower draws larger outlines but never adds a lesion."),
    "ensemble": ("Both lesion networks", "Average two lesion networks trained on different "
                 "synthetic data: fewer false alarms than one (half or fewer in most tests), "
                 "for little more time."),
    "min_lesion_mm3": ("Smallest lesion kept", "Lesions smaller than this are dropped."),
    "margin": ("Mask margin", "Grow (positive) or shrink (negative) the found mask by whole "
               "voxels."),
    "fluid": ("How fluid looks", "Dark (T1, FLAIR) or bright (T2, PD) fluid; bright adds a "
              "second pass that keeps eyes and neck out. Auto tells it from the image."),
    "rim_mm": ("Fluid rim kept", "With bright fluid: how far beyond the brain the mask may "
               "reach, to keep the fluid around it."),
    "dark_rim_mm": ("Dark fluid rim added", "With dark fluid (T1, FLAIR): how far the mask "
                    "may grow through fluid beyond the brain, out to the skull; 0 turns "
                    "it off."),
}

_EQUATION = re.compile(r"\s*\((?:eqs?\.|equations?)\s*[^)]*\)", re.IGNORECASE)

#: Units as a newcomer reads them.
_UNIT_WORDS = (("t.u.", "time unit"), ("1/mm", "per mm"))


def plain_summary(summary: str) -> str:
    """*summary* without equation references, with a capital letter."""
    text = _EQUATION.sub("", summary).strip()
    return text[:1].upper() + text[1:]


def plain_unit(unit: str) -> str:
    """``"mm²/t.u."`` → ``"mm² per time unit"``; time units are steps of the simulation."""
    text = unit
    for short, words in _UNIT_WORDS:
        text = text.replace(short, words)
    return text.replace("/", " per ")


def method_label(name: str) -> str:
    """Plain name of a method or pipeline step (its technical name if none is known)."""
    return METHOD_NAMES.get(name, (name.replace("_", " "), ""))[0]


def method_tooltip(name: str, summary: str = "") -> str:
    """Plain explanation, then the technical name and summary."""
    plain = METHOD_NAMES.get(name, ("", ""))[1]
    tech = f"Technical name: {name}" + (f" — {summary}" if summary else "")
    return f"{plain}\n{tech}" if plain else tech


def pipeline_label(name: str) -> str:
    """Plain name of a named pipeline: ``"cnn+rd+ac"`` → ``"Network, then …"``."""
    if name in PIPELINE_NAMES:
        return PIPELINE_NAMES[name]
    if name in METHOD_NAMES:
        return METHOD_NAMES[name][0]
    return name


def pipeline_tooltip(name: str, description: str = "") -> str:
    """The plain name, then the technical name and its steps."""
    steps = f" ({description})" if description else ""
    return f"{pipeline_label(name)}\nTechnical name: {name}{steps}"


def param_label(name: str) -> str:
    """Plain name of a parameter."""
    return PARAM_NAMES.get(name, (name.replace("_", " "), ""))[0]


def param_help(name: str) -> str:
    """Plain explanation of a parameter ("" if none is known)."""
    return PARAM_NAMES.get(name, ("", ""))[1]
