"""Optional observability integrations, each imported only when used.

- ``PrometheusMetrics``: needs ``pip install workerpoolxt[prometheus]``.
- ``OpenTelemetryTracing``: needs ``pip install workerpoolxt[otel]``.
"""

from ._otel import OpenTelemetryTracing
from ._prometheus import PrometheusMetrics

__all__ = ["OpenTelemetryTracing", "PrometheusMetrics"]
