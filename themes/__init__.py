"""Bundled themes (installed as ``kameng.themes``); ``default`` is complete."""
