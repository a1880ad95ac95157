"""Readers for checkpoint formats found in the wild; each turns a file into a module without running code from it."""
