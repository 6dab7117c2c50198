"""LDAP sign-in: the hub's authenticator and the directory behind it.

Dependencies point one way: :mod:`.authenticator` (who may sign in, admins, refresh) →
:mod:`.options` (the options for reaching the directory) → :mod:`.directory` (connections,
binds, searches, failover) → :mod:`.servers` and :mod:`.names` (pure: server order; DNs,
hub group names, escaped filters).
"""
