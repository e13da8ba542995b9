"""`chat` mounted at /chat inside Starlette, as an app served by uvicorn/wsrun in the tests."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from app import chat


async def home(request: object) -> PlainTextResponse:
    return PlainTextResponse("host app\n")


app = Starlette(routes=[Route("/", home), Mount("/chat", app=chat)])
