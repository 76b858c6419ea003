"""Every option of cnb's command line, declared once (no typer, no click: the fast path imports this).

Each :class:`Option` says its long name, short aliases, kind of value, default, the ``CNB_*`` variable the
lifecycle reads when the flag is not given (``cnb lifecycle <phase>``), its help and the commands that take it.
The views of this table are generated from it: the click commands of the hot commands and the typer options of
the others (:mod:`cnbplatform.cli.params`), the fast argv parser (:mod:`cnbplatform.cli.entry`), and the Go-style
``-name=value`` front end of the lifecycle phases. A long option name is spelled nowhere else in ``cli/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cnbplatform.platform.lifecycle_settings import SETTINGS

Kind = Literal["flag", "count", "str", "int", "float", "path", "list", "paths"]
"""flag: a boolean, True when given (an ``off`` name sets False); count: how often given (``-vv``); str, int,
float, path: one value; list, paths: repeatable, every value kept in order."""

Value = str | int | float | bool | None


@dataclass(frozen=True)
class Option:
    dest: str
    """The keyword the command body receives."""
    name: str
    """The long name, ``--cache-image``; the Go front end spells it ``-cache-image``."""
    kind: Kind
    help: str
    commands: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    """Short names: ``-t``."""
    default: Value = None
    """The value when not given (lists: empty). For lifecycle phases None: the variable, then ``env_default``."""
    env: str | None = None
    """The ``CNB_*`` variable the lifecycle reads when the flag is not given."""
    env_default: str | None = None
    """The lifecycle's value when neither the flag nor the variable is given."""
    off: str | None = None
    """A second name that sets a flag to False: ``--no-skip-layers``."""
    metavar: str | None = None
    """How help shows the value: ``NAME``, ``DIR``."""
    required: bool = False
    show_default: bool = False


@dataclass(frozen=True)
class Argument:
    dest: str
    metavar: str
    """How help and usage errors show it: ``IMAGE``."""
    help: str
    commands: tuple[str, ...]
    many: bool = False
    """Takes every remaining word (None when there is none)."""
    required: bool = True


@dataclass(frozen=True)
class Command:
    """A command whose options are all in this table: its click command and fast parser are generated."""

    name: str
    """Words after ``cnb``: ``build``, ``image copy``, ``lifecycle detect``."""
    help: str
    body: str
    """The function of :mod:`cnbplatform.cli.commands` that runs it, called with the parsed keywords."""
    preload: str
    """The platform module it runs, imported with the command's start-up."""
    fixed: tuple[tuple[str, str], ...] = ()
    """Keywords the body gets besides the parsed ones (the phase of ``lifecycle <phase>``)."""


PHASE_HELP = {
    "analyze": "Read the previous image and the run image; write analyzed.toml.",
    "detect": "Find the first passing group of buildpacks; write group.toml and plan.toml.",
    "restore": "Restore store.toml, layer metadata and cached layers.",
    "build": "Run bin/build of each buildpack in the group; write metadata.toml.",
    "export": "Assemble the app image on the run image, write it to every tag, and write the cache.",
    "create": "analyze, detect, restore, build and export in one go.",
    "rebase": "Put the app image on a new run image (from --run-image or its label) and save every tag.",
    "launch": "The launcher's logic on this machine: run --process-type (else the default process, else the "
    "given command) of the app in --layers/--app; CNB_PROCESS_TYPE is ignored, as by the launcher.",
}
PHASES = tuple(PHASE_HELP)
#: The Go lifecycle's phase executables (``cnb lifecycle creator …``), the keys of
#: :data:`cnbplatform.cli.goflags.EXECUTABLES`, whose flag tables only a Go spelling needs.
GO_EXECUTABLES = ("analyzer", "detector", "restorer", "extender", "builder", "exporter", "creator", "rebaser",
                  "launcher")  # fmt: skip

BUILD = ("build",)
REBASE = ("rebase",)
RUN = ("run",)
COPY = ("image copy",)
RESOLVE = ("resolve",)
LIFECYCLE = tuple(f"lifecycle {phase}" for phase in PHASES)
K8S_BUILDS = ("k8s job", "k8s tekton", "k8s kpack")
K8S_VOLUME_SOURCES = ("k8s job", "k8s tekton")

COMMANDS = (
    Command("build", "Build IMAGE from the app in --path with the buildpacks of --builder.", "build_command",
            "cnbplatform.platform.build"),
    Command("rebase", "Put an app image on a newer run image without rebuilding: only the base layers change.",
            "rebase_command", "cnbplatform.platform.rebase"),
    Command("run", "Run IMAGE in a bwrap sandbox as the image's user (unpacked once per digest). Ctrl-C stops it.",
            "run_command", "cnbplatform.platform.run"),
    Command("image copy", "Copy an image (or a whole index) from SOURCE to DESTINATION.", "copy_command",
            "cnbplatform.platform.images"),
    Command("resolve", "Pin every image reference in Kubernetes YAML to a digest (kbld's files and outputs).",
            "resolve_command", "cnbplatform.resolve.run"),
    *(Command(f"lifecycle {phase}", text, "lifecycle_command", "cnbplatform.platform.lifecycle_run",
              (("phase", phase),)) for phase, text in PHASE_HELP.items()),
)  # fmt: skip

ADDRESS_HELP = (
    "oci:DIR[:TAG], docker-daemon:REF, host/repo:tag (registry), docker://REF, local:NAME or NAME (local store)"
)

ARGUMENTS = (
    Argument("image", "IMAGE", "Image to write: a local name, or a registry reference with --publish.", BUILD),
    Argument("image", "IMAGE", "The app image (local name; a registry with --publish; oci:DIR:TAG…).", REBASE),
    Argument("image", "IMAGE", "The image: local name, oci:DIR:TAG, registry reference or docker-daemon:REF.", RUN),
    Argument("args", "ARGS", "Arguments after -- replace the image's CMD / process args.", RUN, many=True,
             required=False),
    Argument("source", "SOURCE", ADDRESS_HELP, COPY),
    Argument("destination", "DESTINATION", ADDRESS_HELP, COPY),
    Argument("images", "IMAGE", "Output image and extra tags (analyze, export, create, rebase).", LIFECYCLE,
             many=True, required=False),
)  # fmt: skip


def _cnb(dest: str, name: str, kind: Kind, help: str, *, metavar: str | None = None, off: str | None = None) -> Option:
    """A lifecycle phase's option: not given is None, then its CNB_* variable, then the lifecycle's default."""
    variable, fallback = SETTINGS[dest]
    return Option(dest, name, kind, help, LIFECYCLE, env=variable, env_default=fallback, metavar=metavar, off=off)


INSECURE_COMMANDS = (*BUILD, *REBASE, *RUN, *COPY, *RESOLVE, *LIFECYCLE, "lifecycle image", "image ls",
                     "image inspect", "image rm", "image tag", "inspect", "base create", "builder create",
                     "builder inspect", "buildpack package", "sbom download", "sbom export", "sbom diff", "deploy",
                     "k8s manifests", "k8s kpack")  # fmt: skip

OPTIONS = (
    # the root: cnb [-v] [-q] COMMAND
    Option("verbose", "--verbose", "count", "Show causes and HTTP exchanges.", ("cnb",), ("-v",), default=0),
    Option("quiet", "--quiet", "flag", "No progress output.", ("cnb",), ("-q",), default=False),
    Option("version", "--version", "flag", "Print version.", ("cnb",), default=False),
    # build
    Option("builder", "--builder", "str", "Builder image, or a dir with builder.toml.", BUILD, ("-B",),
           metavar="NAME"),
    Option("path", "--path", "path", "The app directory.", BUILD, ("-p",), default=".", metavar="DIR",
           show_default=True),
    Option("publish", "--publish", "flag", "Write the image to its registry.", BUILD, default=False),
    Option("daemon", "--daemon", "flag", "Write the image to the Docker engine (DOCKER_HOST).", BUILD, default=False),
    Option("tag", "--tag", "list", "More names for the image.", BUILD, ("-t",), metavar="NAME"),
    Option("run_image", "--run-image", "str", "Run image instead of the builder's.", BUILD, metavar="IMAGE"),
    Option("env", "--env", "list", "Build-time env: KEY=VALUE, or KEY from this shell.", BUILD, ("-e",),
           metavar="KEY[=VALUE]"),
    Option("env_file", "--env-file", "paths", "File of KEY=VALUE lines.", BUILD, metavar="FILE"),
    Option("buildpack", "--buildpack", "list", "Buildpack dir, id@version, .cnb, image.", BUILD, ("-b",),
           metavar="BUILDPACK"),
    Option("descriptor", "--descriptor", "path", "project.toml (default: <path>/project.toml).", BUILD, ("-d",),
           metavar="FILE"),
    Option("cache_dir", "--cache-dir", "path", "Directory cache (default per image).", BUILD, metavar="DIR"),
    Option("cache_image", "--cache-image", "str", "Cache kept as an image.", BUILD, metavar="IMAGE"),
    Option("clear_cache", "--clear-cache", "flag", "Start without cached layers.", BUILD, default=False),
    Option("previous_image", "--previous-image", "str", "Reuse layers of this image.", BUILD, metavar="IMAGE"),
    Option("default_process", "--default-process", "str", "Process type to start by default.", BUILD,
           metavar="TYPE"),
    Option("sbom_output_dir", "--sbom-output-dir", "path", "Copy the SBOMs here.", BUILD, metavar="DIR"),
    Option("report_output_dir", "--report-output-dir", "path", "Copy report.toml here.", BUILD, metavar="DIR"),
    Option("creation_time", "--creation-time", "str", "now, or seconds since the epoch (default: 1980).", BUILD,
           metavar="TIME"),
    Option("pull_policy", "--pull-policy", "str", "always, if-not-present or never.", BUILD,
           default="if-not-present", metavar="POLICY", show_default=True),
    Option("network", "--network", "str", "private (outside world, not this machine's loopback), host or none.",
           BUILD, default="private", metavar="MODE", show_default=True),
    Option("volume", "--volume", "list", "HOST:/path[:ro] mounted for buildpacks.", BUILD, metavar="VOLUME"),
    Option("sandbox", "--sandbox", "str", "bwrap, docker or host.", BUILD, default="bwrap", metavar="SANDBOX",
           show_default=True),
    Option("detect_timeout", "--detect-timeout", "float", "Seconds one bin/detect may take.", BUILD, default=600.0,
           metavar="SECONDS", show_default=True),
    Option("host_ca_certs", "--host-ca-certs", "path",
           "CA bundle of this machine for buildpacks (TLS-intercepting proxies).", BUILD, metavar="FILE"),
    Option("dockerfile", "--dockerfile", "path",
           "Build this Dockerfile (BuildKit through DOCKER_HOST, else buildah) instead.", BUILD, metavar="FILE"),
    Option("using", "--using", "str", "Image builder: buildpacks (default), dockerfile, go, or an installed plug-in.",
           BUILD, metavar="BUILDER"),
    Option("keep_workspace", "--keep-workspace", "flag",
           "Keep the build's work dir when the build fails (to look into).", BUILD, default=False),
    # rebase
    Option("run_image", "--run-image", "str",
           "The new run image (default: the one the app records, a mirror on its registry first).", REBASE,
           metavar="IMAGE"),
    Option("publish", "--publish", "flag", "IMAGE is in a registry: rebase it there, moving no app layer.", REBASE,
           default=False),
    Option("daemon", "--daemon", "flag", "IMAGE is in the Docker engine.", REBASE, default=False),
    Option("force", "--force", "flag", "Rebase even when a check fails (each is reported as a warning).", REBASE,
           default=False),
    Option("previous_image", "--previous-image", "str", "Read the app from here, save to IMAGE.", REBASE,
           metavar="IMAGE"),
    Option("tag", "--tag", "list", "Also save the rebased image under this name (repeatable).", REBASE, ("-t",),
           metavar="NAME"),
    Option("report_output_dir", "--report-output-dir", "path", "Write report.toml here.", REBASE, metavar="DIR"),
    Option("creation_time", "--creation-time", "str", "'now' or Unix seconds (default 1980).", REBASE,
           metavar="TIME"),
    # run
    Option("process", "--process", "str", "Run /cnb/process/TYPE instead of the default.", RUN, ("-p",),
           metavar="TYPE"),
    Option("env", "--env", "list", "KEY=VALUE added to the image's environment.", RUN, ("-e",),
           metavar="KEY=VALUE"),
    Option("network", "--network", "str", "host (share this machine's network) or none.", RUN, default="host",
           metavar="MODE", show_default=True),
    # image copy, image inspect, inspect
    Option("platform", "--platform", "str", "os/arch or os/arch/variant to pick from an index.",
           (*COPY, "image inspect", "inspect"), metavar="OS/ARCH"),
    # resolve
    Option("file", "--file", "list", "YAML file, directory of them, or - for stdin.", RESOLVE, ("-f",),
           metavar="FILE"),
    Option("output", "--output", "path", "Write the result here, not to stdout.", RESOLVE, ("-o",), metavar="FILE"),
    Option("lock_output", "--lock-output", "path", "Also write a kbld Config lock here.", RESOLVE, metavar="FILE"),
    Option("imgpkg_lock_output", "--imgpkg-lock-output", "path", "Also write an imgpkg ImagesLock here.", RESOLVE,
           metavar="FILE"),
    Option("parallel", "--parallel", "int", "Registry requests at a time (1-256).", RESOLVE, default=16,
           metavar="N", show_default=True),
    # lifecycle <phase>: the spec's inputs (https://github.com/buildpacks/spec/blob/main/platform.md#inputs)
    _cnb("platform_api", "--platform-api", "str", "Platform API version.", metavar="VERSION"),
    _cnb("layers", "--layers", "str", "Layers directory.", metavar="DIR"),
    _cnb("app", "--app", "str", "App directory.", metavar="DIR"),
    _cnb("platform", "--platform", "str", "Platform directory (env/).", metavar="DIR"),
    _cnb("buildpacks", "--buildpacks", "str", "Buildpacks directory.", metavar="DIR"),
    _cnb("build_config", "--build-config", "str", "The operator's build-time environment.", metavar="DIR"),
    _cnb("analyzed", "--analyzed", "str", "analyzed.toml.", metavar="FILE"),
    _cnb("group", "--group", "str", "group.toml.", metavar="FILE"),
    _cnb("plan", "--plan", "str", "plan.toml.", metavar="FILE"),
    _cnb("order", "--order", "str", "order.toml (default <layers>/order.toml if present, else /cnb/order.toml).",
         metavar="FILE"),
    _cnb("run", "--run", "str", "run.toml.", metavar="FILE"),
    _cnb("stack", "--stack", "str", "stack.toml (read instead of run.toml below Platform API 0.12).",
         metavar="FILE"),
    _cnb("system", "--system", "str", "system.toml.", metavar="FILE"),
    _cnb("report", "--report", "str", "report.toml.", metavar="FILE"),
    _cnb("project_metadata", "--project-metadata", "str", "project-metadata.toml.", metavar="FILE"),
    _cnb("cache_dir", "--cache-dir", "str", "Directory cache.", metavar="DIR"),
    _cnb("cache_image", "--cache-image", "str", "Cache kept as an image.", metavar="IMAGE"),
    _cnb("previous_image", "--previous-image", "str", "Image to reuse layers of.", metavar="IMAGE"),
    _cnb("run_image", "--run-image", "str", "Run image.", metavar="IMAGE"),
    _cnb("uid", "--uid", "int", "User id buildpacks run as.", metavar="UID"),
    _cnb("gid", "--gid", "int", "Group id buildpacks run as.", metavar="GID"),
    _cnb("skip_layers", "--skip-layers", "flag", "Do not reuse or restore layers.", off="--no-skip-layers"),
    _cnb("skip_restore", "--skip-restore", "flag", "Do not restore cached layers."),
    _cnb("process_type", "--process-type", "str", "Default process type.", metavar="TYPE"),
    _cnb("launcher", "--launcher", "str", "The launcher copied into the image.", metavar="FILE"),
    _cnb("daemon", "--daemon", "flag", "Images in the Docker engine."),
    _cnb("parallel", "--parallel", "flag", "Write the image and the cache in parallel."),
    _cnb("sandbox", "--sandbox", "str", "host (in a build container), bwrap or docker.", metavar="SANDBOX"),
    _cnb("build_image", "--build-image", "str", "Build image for --sandbox bwrap or docker.", metavar="IMAGE"),
    _cnb("detect_timeout", "--detect-timeout", "float", "Seconds one bin/detect may take.", metavar="SECONDS"),
    _cnb("build_timeout", "--build-timeout", "float", "Seconds one bin/build may take.", metavar="SECONDS"),
    _cnb("network", "--network", "flag", "Buildpacks get a network (CNB_NETWORK: private, host or none).",
         off="--no-network"),
    _cnb("log_level", "--log-level", "str", "debug, info, warn or error.", metavar="LEVEL"),
    _cnb("force", "--force", "flag", "Rebase despite failed checks."),
    Option("tag", "--tag", "list", "Extra tags for the output image.", LIFECYCLE, metavar="NAME"),
    # shared by many commands
    Option("insecure_registry", "--insecure-registry", "list", "Registry host to reach over plain HTTP.",
           INSECURE_COMMANDS, env="CNB_INSECURE_REGISTRIES", metavar="HOST"),
    # other commands' options with a name the commands above use too
    Option("build_image", "--build-image", "str", "Where to write the build image (any store).", ("base create",),
           required=True, metavar="IMAGE"),
    Option("run_image", "--run-image", "str", "Where to write the run image (any store).", ("base create",),
           required=True, metavar="IMAGE"),
    Option("static_run_image", "--static-run-image", "str",
           "Where to write the static run image (recipes with static-run-image = true).", ("base create",),
           metavar="IMAGE"),
    Option("publish", "--publish", "flag", "Write the image to the registry its name names.",
           ("builder create", "buildpack package", "lifecycle image"), default=False),
    Option("lifecycle", "--lifecycle", "str",
           "The lifecycle the builder carries in /cnb/lifecycle: cnb (its own, self-contained), none, or a "
           "lifecycle image (its last layer).", ("builder create",), default="cnb", metavar="cnb|none|IMAGE",
           show_default=True),
    Option("path", "--path", "path", "Buildpack directory (without --config).", ("buildpack package",), ("-p",),
           metavar="DIR"),
    Option("path", "--path", "path", "Directory to create (default: ./<last part of ID>).", ("buildpack new",),
           ("-p",), metavar="DIR"),
    Option("version", "--version", "str", "The buildpack version.", ("buildpack new",), ("-V",), default="1.0.0",
           show_default=True),
    Option("path", "--path", "path", "The app directory.", ("deploy",), ("-p",), default=".", metavar="DIR",
           show_default=True),
    Option("builder", "--builder", "str", "Builder image for buildpacks.", ("deploy",), ("-B",), metavar="NAME"),
    Option("dockerfile", "--dockerfile", "path", "Build this Dockerfile instead.", ("deploy",), metavar="FILE"),
    Option("using", "--using", "str", "Image builder: buildpacks, dockerfile, go, a plug-in.", ("deploy",),
           metavar="BUILDER"),
    Option("output", "--output", "path", "Write the manifests here, not to stdout.", ("deploy",), ("-o",),
           metavar="FILE"),
    Option("output", "--output", "path", "Write to this file (mode 0600).", ("k8s pull-secret",), ("-o",),
           metavar="FILE"),
    Option("output", "--output", "path", "Write to this file, not stdout.", ("k8s manifests",), ("-o",),
           metavar="FILE"),
    Option("output", "--output", "path", "Write to FILE instead of standard output.", ("sbom export",), ("-o",),
           metavar="FILE"),
    # k8s job, k8s tekton, k8s kpack: what a cluster applies to build IMAGE with a builder's lifecycle
    Option("builder", "--builder", "str", "Builder image (in a registry the cluster reaches).", K8S_BUILDS, ("-B",),
           required=True, metavar="IMAGE"),
    Option("git", "--git", "str", "Git repository the cluster clones the app from.", K8S_BUILDS, metavar="URL"),
    Option("revision", "--revision", "str", "Branch, tag or commit to build (default: the remote's HEAD).",
           K8S_BUILDS, default="", metavar="REV"),
    Option("source_pvc", "--source-pvc", "str", "PersistentVolumeClaim holding the app instead of --git.",
           K8S_VOLUME_SOURCES, metavar="CLAIM"),
    Option("subpath", "--subpath", "str", "The app's directory inside the source.", K8S_BUILDS, default="",
           metavar="DIR"),
    Option("cache_image", "--cache-image", "str", "Keep the build cache as this image.", K8S_BUILDS,
           metavar="IMAGE"),
    Option("cache_pvc", "--cache-pvc", "str", "Keep the build cache on this PersistentVolumeClaim.",
           ("k8s job", "k8s tekton"), metavar="CLAIM"),
    Option("registry_secret", "--registry-secret", "str",
           "kubernetes.io/dockerconfigjson Secret to push with (cnb k8s pull-secret makes one).", K8S_BUILDS,
           metavar="SECRET"),
    Option("run_image", "--run-image", "str", "Run image instead of the builder's.", K8S_BUILDS, metavar="IMAGE"),
    Option("process_type", "--process-type", "str", "Default process type of the app image.", K8S_BUILDS,
           metavar="TYPE"),
    Option("tag", "--tag", "list", "More names for the app image (repeatable).", ("k8s job", "k8s kpack"), ("-t",),
           metavar="NAME"),
    Option("env", "--env", "list", "Build-time env for buildpacks: KEY=VALUE (repeatable).", K8S_BUILDS, ("-e",),
           metavar="KEY=VALUE"),
    Option("uid", "--uid", "int", "User id the phases run as (the build image's CNB_USER_ID).", ("k8s job",),
           default=1000, metavar="UID", show_default=True),
    Option("gid", "--gid", "int", "Group id the phases run as (the build image's CNB_GROUP_ID).", ("k8s job",),
           default=1000, metavar="GID", show_default=True),
    Option("platform_api", "--platform-api", "str", "CNB_PLATFORM_API of the phases.", ("k8s job",), default="0.9",
           metavar="VERSION", show_default=True),
    Option("lifecycle", "--lifecycle", "str",
           "A lifecycle image (cnb lifecycle image makes one) for a ClusterLifecycle (default: kpack's own).",
           ("k8s kpack",), metavar="IMAGE"),
    Option("builder_tag", "--builder-tag", "str",
           "Where kpack writes the builder it assembles (default: IMAGE's repository + -builder).", ("k8s kpack",),
           metavar="IMAGE"),
    Option("stack_id", "--stack-id", "str", "ClusterStack id (default: the builder's io.buildpacks.stack.id).",
           ("k8s kpack",), metavar="ID"),
    Option("build_image", "--build-image", "str", "ClusterStack build image (default: the builder image).",
           ("k8s kpack",), metavar="IMAGE"),
    Option("phases", "--phases", "flag",
           "Run the catalog's buildpacks-phases 0.3 task (a container per phase), not buildpacks 0.6 (creator).",
           ("k8s tekton",), default=False),
    Option("name", "--name", "str", "Name of the resources (default: from IMAGE).", K8S_BUILDS, metavar="NAME"),
    Option("namespace", "--namespace", "str", "Namespace of the namespaced resources.", K8S_BUILDS, ("-n",),
           metavar="NAMESPACE"),
    Option("output", "--output", "path", "Write to this file, not stdout.", K8S_BUILDS, ("-o",), metavar="FILE"),
    Option("name", "--name", "str", "The Secret's name.", ("k8s pull-secret",), default="cnb-pull-secret",
           metavar="NAME", show_default=True),
    Option("namespace", "--namespace", "str", "Namespace of the Secret.", ("k8s pull-secret",), ("-n",),
           metavar="NAMESPACE"),
    Option("name", "--name", "str", "Name of the Deployment and Service.", ("k8s manifests", "deploy"),
           metavar="NAME"),
    Option("namespace", "--namespace", "str", "Namespace of both.", ("k8s manifests", "deploy"), ("-n",),
           metavar="NAMESPACE"),
    Option("name", "--name", "str", "Image name to record (default: IMAGE as given).", ("sbom export",),
           metavar="NAME"),
    # the other commands (declared with typer, their options from here through params.typer_option)
    Option("as_json", "--json", "flag", "Machine-readable output.",
           ("image ls", "image inspect", "inspect", "builder inspect", "sbom diff"), default=False),
    Option("config", "--config", "path", "The recipe, e.g. builders/bookworm/base.toml.", ("base create",),
           required=True),
    Option("extra_run_package", "--extra-run-package", "list",
           "Debian recipes: one more package for the run image (repeatable).", ("base create",)),
    Option("mirror", "--mirror", "str", "Debian recipes: the mirror to use instead.", ("base create",)),
    Option("mirror_option", "--mirror", "str", "Mirror host[/prefix] (pack's flag).", ("config registry-mirrors",),
           ("-m",)),
    Option("config", "--config", "path", "builder.toml (pack's schema).", ("builder create",), ("-c",),
           required=True),
    Option("config", "--config", "path", "package.toml (pack's schema).", ("buildpack package",), ("-c",)),
    Option("fmt", "--format", "str", "image or file (default: file for NAME.cnb).", ("buildpack package",),
           ("-f",)),
    Option("api", "--api", "str", "The Buildpack API version.", ("buildpack new",), ("-a",), default="0.12",
           show_default=True),
    Option("all_", "--all", "flag", "Remove every cache entry not in use, however recent.", ("prune",), ("-a",),
           default=False),
    Option("dry_run", "--dry-run", "flag", "List what would be removed and its size; remove nothing.", ("prune",),
           default=False),
    Option("remote", "--remote", "flag", "Read a bare NAME from its registry instead of the local store.",
           ("sbom download", "sbom export", "sbom diff"), default=False),
    Option("output_dir", "--output-dir", "path", "Where to write launch/<bp>/...", ("sbom download",), ("-o",),
           default=".", show_default=True),
    Option("fmt", "--format", "str", "cyclonedx (1.6 JSON), spdx (2.3 JSON) or html.", ("sbom export",), ("-f",),
           default="cyclonedx", show_default=True),
    Option("serial", "--serial", "str", "CycloneDX serial number: digest (UUID5) or random.", ("sbom export",),
           default="digest", show_default=True),
    Option("timestamp", "--timestamp", "str", "Document time: image (its created time) or now.", ("sbom export",),
           default="image", show_default=True),
    Option("port", "--port", "int", "Container port (default: the image's PORT, or 8080).",
           ("k8s manifests", "deploy")),
    Option("replicas", "--replicas", "int", "Pods to run.", ("k8s manifests", "deploy"), default=1,
           show_default=True),
    Option("pull_secret", "--pull-secret", "str", "Name of an image pull secret to use.", ("k8s manifests", "deploy")),
    Option("create_pull_secret", "--create-pull-secret", "flag",
           "Also output that Secret, from the builder's pull credentials.", ("deploy",), default=False),
    Option("apply", "--apply", "flag", "Pipe the manifests to 'kubectl apply -f -'.", ("deploy",), default=False),
    Option("service_account", "--service-account", "str",
           "Also output this ServiceAccount listing the Secret in imagePullSecrets.", ("k8s pull-secret",)),
)  # fmt: skip


def options_of(command: str) -> tuple[Option, ...]:
    """The options *command* takes, in the order help shows them."""
    return tuple(option for option in OPTIONS if command in option.commands)


def option(command: str, dest: str) -> Option:
    """The option *dest* of *command* (for commands declared with typer, and for messages that name it)."""
    for candidate in OPTIONS:
        if candidate.dest == dest and command in candidate.commands:
            return candidate
    raise KeyError(f"{command}: no option {dest}")


def spelled(command: str, dest: str) -> str:
    """How the command line spells an option of *command*, for messages."""
    return option(command, dest).name


def arguments_of(command: str) -> tuple[Argument, ...]:
    return tuple(argument for argument in ARGUMENTS if command in argument.commands)


def command_named(words: tuple[str, ...]) -> Command | None:
    """The table's command the first words of a command line name (``image copy``, ``lifecycle detect``)."""
    for command in COMMANDS:
        if tuple(command.name.split()) == words:
            return command
    return None
