"""Shared foundations every layer uses: errors, atomic writes, provenance, paths, table files."""
