"""Shared pytest configuration for drgn-btfvars."""
