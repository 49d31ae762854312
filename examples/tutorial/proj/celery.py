"""The application: run a worker for it with ``celeriac -A proj worker -l info``."""

from celeriac import Celery

# sqlite:///proj.db is a file next to where you start the worker: no server to install.
# The results go to the same file (the default result backend of the SQLite broker).
app = Celery("proj", broker="sqlite:///proj.db", include=["proj.tasks"])

if __name__ == "__main__":
    app.start()
