"""Image manipulation detection and localisation (task ``manipulation``)."""
