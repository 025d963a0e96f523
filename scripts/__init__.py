"""Command-line steps and shared plumbing of the StreamFlow feature platform."""
