"""Loaders: bytes in, subjects out."""
