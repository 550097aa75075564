"""The entry point for gunicorn (the Procfile's `gunicorn app:app`) and `flask --app app run`.

Damaged weights end the process with one line and exit code 4 (webapp.serve).
"""

from webapp import serve

app = serve()
