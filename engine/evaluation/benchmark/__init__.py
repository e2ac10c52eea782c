"""The evaluation report: :mod:`.run` computes, :mod:`.report` writes tables and figures,
:mod:`.records` holds what both share (result records, atomic file writers)."""
