"""The OFX plugin's Python side (entry.py, called by the C++ shell) and its install/doctor."""
