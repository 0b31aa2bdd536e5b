"""Importers: session files and strings made by other clients, brought into a store."""
