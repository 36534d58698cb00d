"""One router per resource of protocol v1: health, uploads, jobs, models, shutdown."""
