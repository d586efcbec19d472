"""plugin-server: a Python port of PostHog's plugin-server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plugin-server")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
