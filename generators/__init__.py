"""Image and clip generation: requests, the grammar, models, the worker and rendering."""
