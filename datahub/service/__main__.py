"""``python -m datahub.service -f jupyterhub_config.py`` starts the DataHub service."""

from .app import main

main()
