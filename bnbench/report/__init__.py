"""Comparison tables from benchmark records."""
