"""Image builders: one small protocol (:class:`~cnbplatform.imagebuilders.base.ImageBuilder`) and the built-ins
``buildpacks``, ``dockerfile`` and ``go``; others register through the ``cnb.image_builders`` entry-point group."""
