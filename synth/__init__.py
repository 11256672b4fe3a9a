"""Procedural scene simulator with exact ground truth (surveillance and drone footage)."""
