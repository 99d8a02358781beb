"""Training data: the photos, their sources and licences, the prepared patch files, the damage."""
