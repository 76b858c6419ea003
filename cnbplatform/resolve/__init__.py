"""kbld-compatible resolution of image references in YAML documents (https://carvel.dev/kbld/docs/latest/).

``documents`` reads and writes the YAML streams, ``config`` the ``kind: Config`` and lock documents, ``search``
finds and rewrites references, ``resolver`` turns tags into digests with manifest ``HEAD`` requests and
``run`` ties them together (building ``sources`` through :mod:`cnbplatform.imagebuilders`).
"""
