"""`app:chat` mounted at /chat inside a Starlette app: the page behind a root_path.

Served by the page tests as "tests.frontend.mounted:app"; it must not be imported by them.
"""

from starlette.applications import Starlette
from starlette.routing import Mount

from app import chat

# ChatApp types its scope as dict, Starlette as MutableMapping: same thing at run time.
app = Starlette(routes=[Mount("/chat", app=chat)])  # type: ignore[arg-type]
