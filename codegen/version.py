"""The version of codegen (also the package version, see pyproject.toml)."""

__version__ = "0.1.0"
