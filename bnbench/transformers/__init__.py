"""Transformers over row tokens: the shared encoding, the exact construction and trained models."""
