"""Deterministic image layers: the tar format (``tarformat``, ``tarlayer``), layer specs and their streaming
writer (``spec``, ``stream``), compression (``compress``), and the layer cache keyed by a tree's stat fingerprint
(``cache``, ``fingerprint``): an unchanged layer is never tarred, hashed or compressed twice."""
