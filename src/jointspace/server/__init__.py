"""jointspace.server: the HTTP search service and its web page.

:func:`jointspace.server.app.create_app` builds the FastAPI application over a saved model
and one or more indexes; :func:`jointspace.server.app.serve` runs it under uvicorn (bound to
127.0.0.1 unless told otherwise); ``jointspace serve`` is the command line.
"""
