"""A fake app image on the host for launcher tests: layers, app dir, the launcher script, process symlinks and the
compiled launch files, with image paths that are host paths under ``tmp_path``."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.launcher import (
    LAUNCHER_SCRIPT,
    LaunchBuildpack,
    LaunchLayer,
    LaunchProcess,
    compile_launch_env,
    escape_id,
    write_launch_env,
)

SHELLS = {"dash": ("/bin/sh",), "busybox": ("/bin/busybox", "sh")}
BASE_PATH = "/cnb/process:/cnb/lifecycle:/usr/local/bin:/usr/bin:/bin"


@dataclass
class FakeImage:
    root: Path
    shell: tuple[str, ...] = SHELLS["dash"]
    buildpacks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def app(self) -> Path:
        return self.root / "workspace"

    @property
    def launcher(self) -> Path:
        return self.root / "cnb" / "lifecycle" / "launcher"

    def layer(self, bp_id: str, name: str) -> Path:
        """Create (or return) ``<layers>/<bp>/<name>``; buildpacks are ordered by first use."""
        if bp_id not in self.buildpacks:
            self.buildpacks.append(bp_id)
        path = self.layers / escape_id(bp_id) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, path: Path, content: bytes | str, *, mode: int = 0o644) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)
        return path

    def env_file(self, bp_id: str, layer: str, rel: str, content: bytes | str) -> Path:
        return self.file(self.layer(bp_id, layer) / rel, content)

    def script(self, bp_id: str, layer: str, rel: str, body: str) -> Path:
        return self.file(self.layer(bp_id, layer) / rel, "#!/bin/sh\n" + body, mode=0o755)

    def export(self, *processes: LaunchProcess, platform_api: str = "0.15") -> None:
        """Compile the launch files the way the exporter does and lay out ``/cnb``."""
        self.app.mkdir(parents=True, exist_ok=True)
        buildpacks = []
        for bp_id in self.buildpacks:
            bp_dir = self.layers / escape_id(bp_id)
            names = sorted(p.name for p in bp_dir.iterdir() if p.is_dir())
            buildpacks.append(LaunchBuildpack(bp_id, tuple(LaunchLayer(n, bp_dir / n) for n in names)))
        files = compile_launch_env(
            buildpacks,
            processes,
            app_dir=str(self.app),
            layers_dir=str(self.layers),
            platform_api=platform_api,
            warn=self.warnings.append,
        )
        write_launch_env(self.layers, files)
        self.file(self.launcher, LAUNCHER_SCRIPT, mode=0o755)
        process_dir = self.root / "cnb" / "process"
        process_dir.mkdir(parents=True, exist_ok=True)
        for process in processes:
            link = process_dir / process.type
            if not link.is_symlink():
                link.symlink_to("../lifecycle/launcher")

    def base_env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": BASE_PATH,
            "HOME": str(self.root),
            "CNB_LAYERS_DIR": str(self.layers),
            "CNB_APP_DIR": str(self.app),
            "CNB_PLATFORM_API": "0.15",
            "CNB_DEPRECATION_MODE": "quiet",
            "LC_ALL": "C",
        }
        env.update(extra)
        return env

    def run(
        self, entry: str, *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``/cnb/process/<entry>`` (or the launcher itself when *entry* is ``launcher``) with the shell."""
        target = self.launcher if entry == "launcher" else self.root / "cnb" / "process" / entry
        return subprocess.run(
            [*self.shell, str(target), *args],
            env=self.base_env() if env is None else env,
            input=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )

    def env_of(self, entry: str, *args: str, env: dict[str, str] | None = None) -> dict[bytes, bytes]:
        """The exact environment a process sees: run ``entry`` whose command is ``env -0`` and parse it."""
        result = self.run(entry, *args, env=env)
        assert result.returncode == 0, result.stderr
        return parse_env0(result.stdout)


def parse_env0(out: bytes) -> dict[bytes, bytes]:
    pairs = [item.split(b"=", 1) for item in out.split(b"\0") if item]
    return {k: v for k, v in pairs}


def process(type_: str, *command: str, **kw: object) -> LaunchProcess:
    return LaunchProcess(type_, tuple(command), **kw)  # type: ignore[arg-type]
