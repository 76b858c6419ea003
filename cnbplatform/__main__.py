"""``python -m cnbplatform`` is ``cnb``."""

from cnbplatform.cli.entry import main

main()
