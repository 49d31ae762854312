"""Periodic tasks kept in the database and edited in Django's admin (Celery's
``django_celery_beat``): add ``"celeriac.contrib.django.beat"`` to ``INSTALLED_APPS``, run
``migrate`` and start beat with ``--scheduler celeriac.contrib.django.schedulers:DatabaseScheduler``
(``django_celery_beat.schedulers:DatabaseScheduler`` is accepted too).

See docs/django.md ("Periodic tasks in the database") and docs/decisions/0017.
"""
