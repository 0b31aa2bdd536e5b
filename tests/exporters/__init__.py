"""Exporters: stored sessions written as files other clients open."""
