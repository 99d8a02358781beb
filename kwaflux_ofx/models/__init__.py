"""Built-in models (trained here, see python/) and the registry that finds models by name."""
