"""The tutorial's project: the app lives in proj/celery.py, the tasks in proj/tasks.py."""
