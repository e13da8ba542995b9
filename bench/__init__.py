"""Side-by-side WebSocket benchmarks: wsrun against uvicorn, hypercorn and granian.

`python -m bench` (see `bench/__main__.py`) starts every server under test on the same plain
ASGI apps (`bench/apps.py`), drives them from a separate load-generator process
(`bench/load.py`), interleaves rounds across servers and reports medians, spread and the ratio
to uvicorn `--ws websockets-sansio`, per wall-second and per server CPU-second.

This package never imports `server/` or `app/`: servers are only ever started as processes.
"""
