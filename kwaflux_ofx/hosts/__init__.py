"""The code each host (an OFX host, DaVinci Resolve, Natron) runs or installs; never imported by the engine."""
