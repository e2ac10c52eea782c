"""Delineo viewer: the Qt (PySide6 + pyqtgraph) desktop application.

Holds no algorithms: tools turn mouse events into calls of ``engine``
kernels; workers turn ``engine`` jobs into Qt signals.
"""
