"""The python-poetry example: an ASGI app (Starlette) that cnb/python serves with uvicorn on $PORT."""

from importlib.metadata import version

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route


async def index(request: object) -> HTMLResponse:
    return HTMLResponse(f"<h1>Hello from cnb! (python-poetry)</h1>\n<p>Starlette {version('starlette')}</p>\n")


app = Starlette(routes=[Route("/", index)])
