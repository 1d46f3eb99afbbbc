"""Pure MAKER logic: voting, scaling laws, red flags. No redis, celery or httpx imports here."""
