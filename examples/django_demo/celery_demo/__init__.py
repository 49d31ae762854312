"""The tutorial's Django project. The Celery app is imported here so ``@shared_task`` tasks
bind to it as soon as Django starts (the pattern of Celery's Django docs)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
