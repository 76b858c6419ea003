"""``hello-web``: one page rendered with Jinja2, served by the standard library on $PORT (8080 by default)."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import version

from jinja2 import Template

PAGE = Template("<h1>Hello from cnb! ({{ name }})</h1>\n<p>Jinja2 {{ jinja }}</p>\n")


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.render(name="python-pyproject", jinja=version("jinja2")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Page).serve_forever()
