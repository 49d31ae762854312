"""Management commands of ``celeriac.contrib.django``: ``celeriac_worker`` and ``celeriac_beat``."""
