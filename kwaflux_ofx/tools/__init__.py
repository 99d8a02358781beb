"""Converters that bring outside models to the engine; used from the command line only."""
