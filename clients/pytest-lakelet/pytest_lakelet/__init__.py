"""pytest-lakelet: a fresh lakelet database per test.

The fixtures (``lakelet_db``, ``lakelet_db_module``, ``lakelet_db_session``) live in
``pytest_lakelet.plugin``, which pytest loads by itself; the runner-independent API is
``pytest_lakelet.client`` (``checkout``, ``release``), re-exported here.
"""

from .client import (
    LakeletApiError,
    LakeletConfigError,
    LakeletDatabase,
    LakeletError,
    LakeletUnreachableError,
    checkout,
    release,
)

__all__ = [
    "LakeletApiError",
    "LakeletConfigError",
    "LakeletDatabase",
    "LakeletError",
    "LakeletUnreachableError",
    "checkout",
    "release",
]
__version__ = "0.1.0"
