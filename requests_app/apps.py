from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Data subject requests"

    def ready(self):
        from requests_app import checks, signals  # noqa: F401  (registers checks and receivers)
        from requests_app.accounts import changes, lockout  # noqa: F401  (signal receivers)
