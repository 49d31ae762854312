"""Integrations with other frameworks. An edge: nothing in the core imports ``celeriac.contrib``
(the import-linter contract puts it at the top, beside ``celeriac.cli``)."""
