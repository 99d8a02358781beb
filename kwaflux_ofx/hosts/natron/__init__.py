"""Natron: the NatronRenderer batch script (kwaflux_upscale.py), run by Natron's own Python."""
