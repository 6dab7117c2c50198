"""The DataHub gateway: Trino protocol in, hub identity checked, Trino clusters out.

- ``protocol``: headers, page facts, Trino-format errors (pure functions);
- ``signing``: signed follow-up and queued-query URIs (pure);
- ``rewrite``: result pages rewritten as they stream through (pure);
- ``routing``: which routing group a query goes to (rules, hint, hook; pure);
- ``clusters``: cluster configuration, status, the choice within a routing group and the
  failover rule (pure);
- ``stats``: Trino's statistics in plain numbers (pure);
- ``admission``: where other features plug in: the one admission, the listeners;
- ``journal``: the record of every query the tracker writes to (the audit implements it);
- ``health``: periodic health and load checks, drain flags;
- ``tracker``, ``closing``, ``watcher``: each query's life (admission, journal, listeners,
  metrics), its one close, and the watcher and reconciler that ask the clusters;
- ``upstream``: pooled HTTP clients for the clusters;
- ``metrics``: Prometheus metrics at ``/metrics``;
- ``core``: the `Gateway` part the service builds and the handlers read;
- ``submit``, ``followup``, ``exchange``: the steps of a query (route, admit, pick a cluster,
  forward, relay; follow-ups and queued queries), over values, no HTTP server;
- ``handlers`` and ``pages``: thin tornado adapters for the Trino protocol, and the
  clusters API and page.
"""
