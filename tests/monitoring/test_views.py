"""The public views: the published site served from files, and what happens when nothing is published yet."""
import logging

import pytest
from django import db

from monitoring.statuspage import publishing

pytestmark = pytest.mark.django_db


def test_published_view__nothing_published_and_database_down__503_retry_after_and_logged(
        client, monkeypatch, caplog):
    def database_down(*args, **kwargs):
        raise db.OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    monkeypatch.setattr(publishing.selectors, "snapshot", database_down)
    with caplog.at_level(logging.WARNING, logger="monitoring.statuspage.views"):
        response = client.get("/status/")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "port 5432 failed" in caplog.text


def test_published_view__nothing_published_and_publish_dir_unwritable__503_and_logged(
        client, settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.STATUS_PUBLISH_DIR = blocker / "status-site"
    with caplog.at_level(logging.WARNING, logger="monitoring.statuspage.views"):
        response = client.get("/status/api/v2/summary.json")
    assert response.status_code == 503
    assert "NotADirectoryError" in caplog.text


def test_published_view__nothing_published_and_publishing_has_a_bug__error_not_hidden(client, monkeypatch):
    def bug(*args, **kwargs):
        raise TypeError("render_site() got an unexpected keyword argument")

    monkeypatch.setattr(publishing, "render_site", bug)
    with pytest.raises(TypeError, match="unexpected keyword"):
        client.get("/status/")


def test_published_view__nothing_published__publishes_once_and_serves(client, components):
    response = client.get("/status/api/v2/status.json")
    assert response.status_code == 200 and b'"indicator":"none"' in response.content
    assert (publishing.site_root() / "index.html").exists()
