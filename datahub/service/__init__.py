"""The DataHub service (gateway, REST API, pages), run by JupyterHub as a managed service."""
