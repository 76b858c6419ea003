"""``python -m cnbplatform`` is ``cnb``."""

from cnbplatform.cli.main import main

main()
