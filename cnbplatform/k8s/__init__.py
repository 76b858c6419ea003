"""Kubernetes documents rendered from jinja2 templates (``templates/*.yaml.j2``, packaged with cnb).

``render`` renders and parses one template; ``secrets`` makes image pull secrets, ``deploy`` a Deployment and
Service for a buildpacks-built image. Nothing here talks to a cluster.
"""
