"""Data: the demo brain (MNI ICBM152 via the nilearn wheel) and phantom synthesis."""
