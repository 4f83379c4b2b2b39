"""Notify's Jinja2 templates (package data: ``*.j2``), read by ``notify.core.templates``."""
