"""The DataHub gateway: Trino protocol in, hub identity checked, Trino clusters out.

- ``protocol``: headers, signed follow-up URIs, result-page rewriting, Trino-format errors
  (pure functions);
- ``routing``: which routing group a query goes to (rules, hint, hook; pure);
- ``clusters``: cluster configuration, status, the choice within a routing group (pure);
- ``stats``: Trino's statistics in plain numbers (pure);
- ``hooks``: the interface other features plug into (admission, progress, the end);
- ``health``: periodic health and load checks, drain flags;
- ``tracker``: each query's life: audit, hooks, metrics, the reconciler of lost queries;
- ``upstream``: pooled HTTP clients for the clusters;
- ``metrics``: Prometheus metrics at ``/metrics``;
- ``handlers`` and ``pages``: the Trino protocol, and the clusters API and page;
- ``testing``: a gateway served from a thread, for tests and benchmarks.
"""
