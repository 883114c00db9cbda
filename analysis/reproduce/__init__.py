"""Reproductions of the papers' published effects, each a command that trains, measures and
writes a short report with a verdict (``python -m analysis.reproduce --help``):

- ``capacity-order`` (Burgess et al. 2017, fig. 2): as the capacity C grows, latents switch
  on one at a time in the order of how much reconstruction they buy: position first, then
  scale, then shape and orientation;
- ``beta-ladder`` (Higgins et al. 2017): raising β worsens reconstruction and raises the
  disentanglement score, shown over seeds.

Training and scoring use ``betavae`` only; runs are kept under ``OUT/runs/`` and a rerun with
the same ``--out`` reuses the finished ones.
"""
