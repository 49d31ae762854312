"""Test helpers shared across suites: isolated service URLs per broker and backend kind
(:mod:`tests.support.services`) and real worker processes (:mod:`tests.support.workers`)."""
