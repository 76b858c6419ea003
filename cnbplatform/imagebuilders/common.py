"""What the built-in builders share: pushing with cnb's registry client and pull credentials from cnb's lookup."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders.base import BuiltImage, Pushed
from cnbplatform.oci.address import StoreKind, parse_address
from cnbplatform.oci.reference import DOCKER_HUB
from cnbplatform.oci.registry import Credential, resolve_credential
from cnbplatform.platform import images
from cnbplatform.platform.context import PlatformContext


def scratch_name(name: str) -> str:
    """A local name for an intermediate image, stable for one requested name."""
    return "cnb-build/" + hashlib.sha256(name.encode()).hexdigest()[:16]


def push(ctx: PlatformContext, image: BuiltImage, destination: str, tags: Sequence[str] = ()) -> Pushed:
    """Copy *image* to the registry reference *destination* (and its *tags*) with cnb's registry client."""
    address = parse_address(destination if "://" in destination else f"docker://{destination}")
    if address.kind is not StoreKind.REGISTRY or address.reference is None:
        raise UsageError(f"push to {destination!r}: expected a registry reference")
    ref = address.reference
    outcome = images.copy_image(ctx, image.address, f"docker://{ref}")
    digest = outcome.descriptor.digest
    for tag in tags:
        images.copy_image(ctx, image.address, f"docker://{ref.with_tag(tag)}")
    registry = "index.docker.io" if ref.registry == DOCKER_HUB else ref.registry
    return Pushed(f"{registry}/{ref.repository}@{digest}", digest)


def pull_credential(ctx: PlatformContext, registry: str) -> Credential | None:
    return resolve_credential(registry, ctx.env)
