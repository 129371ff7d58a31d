"""Optional observability integrations, each imported only when used.

- ``PrometheusMetrics``: needs ``pip install workerpoolxt[prometheus]``.
"""

from ._prometheus import PrometheusMetrics

__all__ = ["PrometheusMetrics"]
