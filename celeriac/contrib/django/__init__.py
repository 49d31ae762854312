"""Django integration: add ``"celeriac.contrib.django"`` to ``INSTALLED_APPS``.

docs/django.md walks through it. The parts:

* ``fixup``: when ``DJANGO_SETTINGS_MODULE`` is set (or the app is configured from
  ``django.conf:settings``), the worker, beat and the other commands call ``django.setup()``
  before loading tasks, and the worker closes stale database connections around every task and
  after fork (``DjangoMiddleware``).
* ``apps.CeleriacConfig``: the Django app (label ``celeriac``) with the ``celeriac_worker`` and
  ``celeriac_beat`` management commands.
* ``testing``: eager mode and a pytest fixture for a Django project's tests.
* ``results`` (``django-db``/``django-cache`` result backends), ``beat`` (database scheduler)
  and ``tasks`` (a ``django.tasks`` backend) are separate apps and modules.
"""
