"""Persistence behind the narrow Store protocol."""
