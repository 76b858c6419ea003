"""The launcher that goes into every app image: a POSIX ``sh`` script (docs/design.md §3 decision 3; docs/spec-notes.md
§9).

``/cnb/lifecycle/launcher`` is ``launcher.sh`` (next to this module, packaged as data) with its ``@NAME@``
placeholders filled in, and every ``/cnb/process/<type>`` is a symlink to it, so the process
type is ``basename "$0"`` (§9.1). It runs under dash and busybox ``sh`` (ash); nothing in it needs bash.

It never parses TOML and never reads env dirs: the exporter compiled each process's environment into shell code
(:mod:`cnbplatform.launcher.compile`) under ``<layers>/config/launch/`` (``process/<type>.sh`` for a process type,
``direct.sh`` for a command given on the command line). At run time the script:

1. removes ``CNB_LAYERS_DIR CNB_APP_DIR CNB_PROCESS_TYPE CNB_PLATFORM_API CNB_DEPRECATION_MODE`` from the
   environment and the ``/cnb/process`` and ``/cnb/lifecycle`` entries from ``PATH`` (§9.2 step 1);
2. picks the process (§9.1): a type from argv0 that has a compiled file and is eligible for ``CNB_EXEC_ENV``
   (user args replace or follow the process args); argv0 ``.../process/<type>`` without one is "not found";
   any other name (``launcher``) takes ``launcher -- cmd args`` (direct) or ``launcher cmd args`` (shell), and no
   command at all is an error. ``CNB_PLATFORM_API`` is not checked: the files were compiled for the exporter's;
3. ``cd <app>``, applies the compiled environment (§9.2 step 3, §3.8);
4. runs the exec.d programs with fd 3 connected to a pipe and exports the ``KEY = "value"`` lines they write there
   before the next one runs (§3.11, §9.2 step 4); the TOML subset (bare keys, basic strings with escapes, literal
   strings, comments) is parsed in ``sh``;
5. direct processes: ``cd <working-dir>`` and ``exec`` the command (PATH lookup, no profile scripts, §9.2 step 6);
   shell processes: ``exec`` a shell that sources the profile.d scripts and ``<app>/.profile`` (§3.12), changes to
   the working dir and runs the command (§9.2 step 7). The shell is ``/bin/bash`` when the image has it, else
   ``/bin/sh`` (the spec says bash; a busybox image has none).

Every failure of the launcher itself exits 82 (§1.3); after ``exec`` the exit code is the process's own. As with any
shell, ``PWD`` in the process env is its working dir (busybox ash also exports ``SHLVL``, as bash does);
``OLDPWD`` is removed unless the caller gave it.
Internal variables start with ``_cnb_``; exec.d output may not set such names.
"""

from __future__ import annotations

from pathlib import Path

#: Where the launcher lives in an app image (docs/spec-notes.md §6.1 item 5).
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
#: The lifecycle directory; its entry is removed from ``PATH`` at launch (§9.2 step 1).
LIFECYCLE_DIR = "/cnb/lifecycle"
#: ``/cnb/process/<type>`` symlinks point at :data:`LAUNCHER_PATH` (§6.1 item 7).
PROCESS_DIR = "/cnb/process"
#: Exit code of every launcher-side failure (§1.3).
LAUNCHER_ERROR_EXIT = 82
#: Variables removed from the environment before anything else (§9.2 step 1).
STRIPPED_VARS = ("CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE", "CNB_PLATFORM_API", "CNB_DEPRECATION_MODE")

_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TYPE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

# Run by the shell of a shell process when the command has arguments (§9.2 step 7, LC's "tokens" form): each
# token is expanded like a double-quoted word (variables, command substitution), then the result is exec'd.
_TOKENS = """for _cnb_t do
\tshift
\t_cnb_t=$(eval "printf '%s\\\\n' \\"$_cnb_t\\"")
\tset -- "$@" "$_cnb_t"
done
exec "$@"
"""


def sh_quote(value: bytes) -> bytes:
    """*value* as one single-quoted ``sh`` word (every byte kept; ``'`` becomes ``'\\''``)."""
    return b"'" + value.replace(b"'", b"'\\''") + b"'"


def _render() -> bytes:
    """``launcher.sh`` (packaged next to this module) with its ``@NAME@`` placeholders filled in."""
    template = (Path(__file__).parent / "launcher.sh").read_text()
    text = (
        template.replace("@TAB@", "\t")
        .replace("@CR@", "\r")
        .replace("@KEYCHARS@", _KEY_CHARS)
        .replace("@TYPECHARS@", _TYPE_CHARS)
    )
    return text.replace("@TOKENS@", sh_quote(_TOKENS.encode()).decode()).encode()


#: The launcher script, exactly as it is written to :data:`LAUNCHER_PATH` (mode 0755).
LAUNCHER_SCRIPT: bytes = _render()


def launcher_script() -> bytes:
    """The bytes of ``/cnb/lifecycle/launcher`` (docs/spec-notes.md §9; docs/design.md §3 decision 3)."""
    return LAUNCHER_SCRIPT
