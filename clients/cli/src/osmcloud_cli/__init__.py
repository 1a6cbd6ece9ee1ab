"""osmcloud, the reference sync client of an osmcloud server (docs/cli.md)."""
