"""Small stdlib-only helpers."""
