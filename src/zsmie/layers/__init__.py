"""Building blocks of the models, one per file."""
