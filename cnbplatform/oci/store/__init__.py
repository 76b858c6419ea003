"""Image stores behind one protocol (``protocol``): an OCI layout directory (``layout``), the local store
(``local``, one layout under ``$CNB_HOME``), a registry repository (``remote``, on :mod:`cnbplatform.oci.registry`),
a Docker engine (``daemon``, speaking the ``docker_archive`` format); ``stores`` opens the one an address names
with the ``options`` (home, registries, retries, mirrors), ``pull`` reads input images by name."""
