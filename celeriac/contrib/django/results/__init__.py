"""Task results in the Django database: the ``celeriac_results`` app and two result backends.

Add ``"celeriac.contrib.django.results"`` to ``INSTALLED_APPS``, run ``migrate``, and set
``CELERY_RESULT_BACKEND = "django-db"`` (records in the ORM, browsable in the admin) or
``"django-cache"`` (records in one of Django's caches). docs/django.md, "Results in the Django
database"; docs/decisions/0016-django-results-backend.md.

Nothing here is imported by ``import celeriac``: the backends module is loaded by the backend
registry when a URL names one of its schemes.
"""
