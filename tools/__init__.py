"""Build helpers run by the Makefile, not shipped."""
