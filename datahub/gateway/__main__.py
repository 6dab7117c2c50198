"""``python -m datahub.gateway -f jupyterhub_config.py`` starts the gateway."""

from .app import main

main()
