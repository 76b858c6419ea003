"""cnb: a daemonless Cloud Native Buildpacks platform and lifecycle."""

__version__ = "0.1.0"
