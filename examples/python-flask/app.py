"""The python-flask example: one page, served by gunicorn (cnb/python finds ``app`` here) on $PORT, 8080 by default.

``python app.py`` serves it with Flask's own server on the same port.
"""

import os
import platform
from importlib.metadata import version

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return (
        "<h1>Hello from cnb! (python-flask)</h1>\n"
        f"<p>Python {platform.python_version()}, Flask {version('flask')}</p>\n"
    )


@app.route("/healthz")
def healthz() -> str:
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
