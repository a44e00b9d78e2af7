"""Sign-in: every page needs it; the login form signs a user in and back to the catalog."""

from __future__ import annotations

import pytest

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    ["/", "/hub/acme/tiny-bert/", "/imports/", "/imports/1/", "/imports/1/progress/",
     "/registry/", "/registry/x/", "/registry/x/1/"],
)  # fmt: skip
def test_it_sends_anonymous_visitors_to_sign_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_it_signs_in_with_the_form(client, alice):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_it_refuses_a_wrong_password(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_signs_out_with_a_post(alice_client):
    response = alice_client.post("/accounts/logout/")

    assert response.status_code == 200
    assert "Signed out" in response.content.decode()
    assert alice_client.get("/").status_code == 302
