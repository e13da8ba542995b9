"""The chat page's static files (HTML, CSS, ES modules), served by `app:chat`.

A regular package rather than a namespace one, so `importlib.resources.files("frontend")`
resolves to this directory both from a checkout (editable install) and from a wheel. No code.
"""
