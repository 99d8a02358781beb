"""DaVinci Resolve: the conform round trip, the Scripts-menu script (scripts/) and its install."""
