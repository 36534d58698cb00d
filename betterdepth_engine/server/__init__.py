"""The engine service (`betterdepth serve`): protocol v1 over HTTP for Blender, batch jobs and other tools.

    app.py       the FastAPI app: routers under /v1, token auth, JSON errors
    routers/     one router per resource: health, uploads, jobs, models, shutdown
    schemas.py   typed requests and responses
    runner.py    bounded FIFO queue, one model worker, cancel, live progress, restart recovery, retention
    tasks.py     what one job does (estimate | mesh | relief), writing its results atomically
    models.py    models loaded once by name; unload gives the memory back
    store.py     job records in SQLite (survive a killed engine)
    launch.py    socket, ready line, parent watch, logging
"""
