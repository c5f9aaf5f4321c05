"""The model host: serves the artifact folder (Range, ETag, immutable caching) and the web bundle."""
