"""The DataHub gateway: Trino protocol in, hub identity checked, Trino clusters out."""
