"""Shared notebooks: publish, version, share with people and groups, view safely, open a
copy (issue 6).

- `permissions`: who may view, publish, change, unpublish (pure rules);
- `notebooks`, `metadata`, `search`: checking what people send (pure);
- `render`: the notebook as HTML that runs none of its author's script (pure);
- `models` and `store`: the store's tables and the one-transaction writes;
- `hub`: asking the hub who exists, and acting on a user's own server with their token;
- `config`: ``c.SharedNotebooks.*``; `context`: the feature's part of the service (options
  and store); `handlers`: REST API and pages;
- ``datahub.extensions.publish``: the ``%datahub publish`` magic.
"""
