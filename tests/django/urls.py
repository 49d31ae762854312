"""URLconf of the test settings: the admin (engineers' admin tests use it)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
