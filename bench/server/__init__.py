"""The server-level case: the pools inside a real HTTP server under a real load
generator (gunicorn's gthread worker or uvicorn, driven by wrk).

``settings`` is what the runner hands the server (environment variables),
``sync_pools``/``async_pools`` the contenders as a web app would use them,
``wsgi``/``asgi`` the two apps, and ``process``, ``wrk``, ``sessions`` and
``runner`` measure one run; ``bench/cases_server.py`` is the case."""
