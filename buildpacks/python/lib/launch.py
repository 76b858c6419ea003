"""cnb/python: the ``web`` process of the app, as a ``launch.toml`` (docs/spec-notes.md §3.5, Buildpack API 0.12
arrays).

Usage: ``python3 launch.py APP_DIR VENV_DIR > launch.toml`` (what was chosen goes to stderr), or :func:`render`
(``build.py``). In order:

1. the ``web:`` line of a ``Procfile`` (run by ``/bin/sh -c``, as cnb/procfile does);
2. gunicorn, when the venv has it and a WSGI module defines ``app`` or ``application`` (``wsgi.py``, ``app.py``,
   ``main.py``, ``application.py``, ``server.py``): ``gunicorn --bind 0.0.0.0:${PORT:-8080} module:app``;
3. uvicorn, when the venv has it and that module looks like an ASGI app (FastAPI, Starlette, Quart…):
   ``uvicorn --host 0.0.0.0 --port ${PORT:-8080} module:app``;
4. ``python app.py`` (or ``main.py``, ``server.py``): the app reads ``$PORT`` itself.

Nothing found: an empty file and a warning. Standard library only.
"""

from __future__ import annotations

import os
import sys

MODULES = ("wsgi.py", "app.py", "main.py", "application.py", "server.py", "asgi.py")
SCRIPTS = ("app.py", "main.py", "server.py")
APP_VARIABLES = ("app", "application")
ASGI_HINTS = ("FastAPI(", "Starlette(", "Quart(", "Litestar(", "get_asgi_application", "ASGI")


def quoted(text: str) -> str:
    """A TOML basic string: quote and backslash escaped, control characters as ``\\uXXXX``."""
    escaped = (
        "\\" + char if char in '"\\' else f"\\u{ord(char):04x}" if char < " " or char == "\x7f" else char
        for char in text
    )
    return '"' + "".join(escaped) + '"'


def procfile_web(app: str) -> str | None:
    path = os.path.join(app, "Procfile")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("web:") and line[4:].strip():
                return line[4:].strip()
    return None


def app_variable(text: str) -> str | None:
    """The first top-level ``app`` or ``application`` assignment (``app = …``, ``app: Flask = …``) in *text*."""
    for line in text.split("\n"):
        for name in APP_VARIABLES:
            if not line.startswith(name):
                continue
            rest = line[len(name) :].lstrip()
            if rest.startswith("=") or (rest.startswith(":") and "=" in rest):
                return name
    return None


def app_module(app: str) -> tuple[str, str, bool] | None:
    """(module, variable, looks like ASGI) of the first candidate module that defines an app variable."""
    for name in MODULES:
        path = os.path.join(app, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        variable = app_variable(text)
        if variable is not None:
            asgi = name == "asgi.py" or any(hint in text for hint in ASGI_HINTS)
            return name[: -len(".py")], variable, asgi
    return None


def web_command(app: str, venv: str) -> tuple[list[str], str] | None:
    """(command array, how it was chosen)."""
    line = procfile_web(app)
    if line is not None:
        return ["/bin/sh", "-c", line, "web"], "from the Procfile"
    found = app_module(app)
    if found is not None:
        module, variable, asgi = found
        target = f"{module}:{variable}"
        if asgi and os.path.exists(os.path.join(venv, "bin", "uvicorn")):
            shell = f'exec uvicorn --host 0.0.0.0 --port "${{PORT:-8080}}" {target}'
            return ["/bin/sh", "-c", shell], f"uvicorn serves {target}"
        if not asgi and os.path.exists(os.path.join(venv, "bin", "gunicorn")):
            shell = f'exec gunicorn --bind "0.0.0.0:${{PORT:-8080}}" {target}'
            return ["/bin/sh", "-c", shell], f"gunicorn serves {target}"
    for script in SCRIPTS:
        if os.path.isfile(os.path.join(app, script)):
            return ["python", script], f"python runs {script}"
    return None


def render(app: str, venv: str) -> tuple[str, str]:
    """(``launch.toml`` text, the line saying what was chosen) for the app at *app* and the venv at *venv*."""
    chosen = web_command(app, venv)
    if chosen is None:
        return "", "cnb/python: warning: no web process (no Procfile web:, app module or app.py)"
    command, why = chosen
    text = f'[[processes]]\ntype = "web"\ncommand = [{", ".join(quoted(part) for part in command)}]\ndefault = true\n'
    return text, f"cnb/python: web process ({why}): {' '.join(command)}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: launch.py APP_DIR VENV_DIR", file=sys.stderr)
        return 2
    text, message = render(argv[1], argv[2])
    print(message, file=sys.stderr)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
