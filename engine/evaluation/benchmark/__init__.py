"""The evaluation report: :mod:`.run` computes, :mod:`.report` writes tables and figures."""
