"""The package version, in one place: the package metadata and the server read it here."""

__version__ = "0.1.0"
