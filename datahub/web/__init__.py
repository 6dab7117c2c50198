"""The DataHub service's web layer: base handlers for pages and the REST API."""

#: Links in the service pages' nav bar: (path under the service prefix, label, admins only).
#: Each feature adds its pages here.
NAV_LINKS: list[tuple[str, str, bool]] = [
    ("", "Overview", False),
    ("gallery", "Gallery", False),
    ("quota", "My quota", False),
    ("admin/quotas", "Quotas", True),
    ("admin/quotas/usage", "Usage", True),
    ("queries", "My queries", False),
    ("queries/all", "All queries", True),
    ("clusters", "Clusters", False),
]
