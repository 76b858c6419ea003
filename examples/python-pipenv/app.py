"""The python-pipenv example: a Bottle app served by gunicorn (cnb/python finds ``app`` here) on $PORT."""

from importlib.metadata import version

import bottle

app = bottle.Bottle()


@app.route("/")
def index() -> str:
    return f"<h1>Hello from cnb! (python-pipenv)</h1>\n<p>Bottle {version('bottle')}</p>\n"
