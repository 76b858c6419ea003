"""Build images as root filesystems: safe unpacking of layers (``unpack``: whiteouts, hard links, no escapes,
limits) and the per-digest cache of unpacked images under ``$CNB_HOME/rootfs`` (``cache``)."""
