"""The DataHub gateway: Trino protocol in, hub identity checked, Trino clusters out.

- ``protocol``: headers, signed follow-up URIs, result-page rewriting, Trino-format errors
  (pure functions);
- ``routing``: which routing group a query goes to (rules, hint, hook; pure);
- ``clusters``: cluster configuration, status, the choice within a routing group (pure);
- ``stats``: Trino's statistics in plain numbers (pure);
- ``admission``: where other features plug in: the one admission, the listeners;
- ``journal``: the record of every query the tracker writes to (the audit implements it);
- ``health``: periodic health and load checks, drain flags;
- ``tracker``, ``closing``, ``watcher``: each query's life (admission, journal, listeners,
  metrics), its one close, and the watcher and reconciler that ask the clusters;
- ``upstream``: pooled HTTP clients for the clusters;
- ``metrics``: Prometheus metrics at ``/metrics``;
- ``handlers`` and ``pages``: the Trino protocol, and the clusters API and page;
- ``testing``: a gateway served from a thread, for tests and benchmarks.
"""
