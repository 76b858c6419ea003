"""The build cache the restorer reads and the exporter writes: one protocol (``protocol``, with putting layer tars
back into a layers directory) and two backends, a directory (``directory``, with its layer trees in ``trees``)
and an image (``image``)."""
