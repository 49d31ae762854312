"""Benchmarks: celeriac side by side with Celery, same machine, same run."""
