"""Kwaflux's model factory: training sets (sets/), trainers and export (train/), evaluation (eval/)."""
