"""fastpool's benchmark comparison (``python -m bench``)."""
