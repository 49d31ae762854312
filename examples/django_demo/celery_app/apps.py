from django.apps import AppConfig


class CeleryAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "celery_app"
