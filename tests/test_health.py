import pytest


@pytest.mark.django_db
def test_healthz_ok(client, redis_db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_healthz_names_redis_when_it_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"].startswith("error")


@pytest.mark.django_db
def test_healthz_names_database_when_it_does_not_answer(client, redis_db, monkeypatch):
    from requests_app.views import system

    def broken_cursor():
        raise OSError("connection refused")

    monkeypatch.setattr(system.connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "error: OSError", "redis": "ok"}
