"""The ``celery -A worker.app worker`` target: the app configured from the environment."""

from backend.settings import get_settings
from worker.celery_app import make_celery

app = make_celery(get_settings())
