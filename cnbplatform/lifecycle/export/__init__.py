"""The export phase: the app image from the layers directory (``phase`` drives it): layer specs from buildpack
layers, the app and its slices (``layers``, ``slices``), reuse of the previous image's layers (``reuse``), the
config, labels and launcher (``config``, ``image``), and the next cache (``cache``)."""
