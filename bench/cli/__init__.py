"""Command-line front ends: parse arguments, call the library, translate errors."""
