"""Evaluation of the models against peers and each other; the figures go into docs/models.md."""
