"""The python-uv example: one page, served by gunicorn (cnb/python finds ``app`` here) on $PORT."""

from importlib.metadata import version

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return f"<h1>Hello from cnb! (python-uv)</h1>\n<p>Flask {version('flask')}</p>\n"
