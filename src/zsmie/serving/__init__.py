"""A trained run at scale: streamed file prediction (stream.py) and an HTTP service (app.py)."""
