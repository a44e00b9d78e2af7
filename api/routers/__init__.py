"""One django-ninja router per resource of ``/api/v1/``: registry, keys, imports, audit."""
