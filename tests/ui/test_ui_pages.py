"""/ui over the demo repo: login with the API's keys, every page, relative links, Data Docs."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.ui.conftest import READ_KEY

PAGES = ["", "views", "entities", "sources", "services", "lineage", "search?q=amount"]


def log_in(client, key=READ_KEY, path="/ui/login"):
    return client.post(path, data={"key": key, "next": "views/user_purchases"})


def test_pages_redirect_to_the_login_form_relative_to_where_they_are(browser_client):
    assert browser_client.get("/ui").headers["location"] == "ui/"
    refused = browser_client.get("/ui/views/user_purchases")
    assert (refused.status_code, refused.headers["location"]) == (
        303,
        "../login?next=views/user_purchases",
    )
    assert browser_client.get("/ui/").headers["location"] == "./login?next="
    assert browser_client.get("/ui/login").status_code == 200


def test_under_a_proxy_sub_path_redirects_and_links_stay_relative(app):
    with TestClient(app, root_path="/features", follow_redirects=False) as client:
        refused = client.get("/features/ui/views/user_purchases")
        assert refused.headers["location"] == "../login?next=views/user_purchases"
        accepted = log_in(client, path="/features/ui/login")
        assert accepted.headers["location"] == "./views/user_purchases"
        links = re.findall(r'href="([^"]*)"', client.get("/features/ui/services").text)
        assert links[:3] == ["./static/ui.css", "./", "./views"]


def test_an_unknown_view_is_a_404_page(browser_client):
    log_in(browser_client)
    missing = browser_client.get("/ui/views/nope")

    assert missing.status_code == 404
    assert "unknown feature view &#39;nope&#39;" in missing.text


def test_a_wrong_key_is_refused_on_the_form(browser_client):
    refused = log_in(browser_client, "not-a-key")

    assert refused.status_code == 401
    assert "X-API-Key: unknown key" in refused.text
    assert "set-cookie" not in refused.headers


def test_the_key_is_kept_in_an_http_only_strict_cookie(browser_client):
    accepted = log_in(browser_client)

    assert (accepted.status_code, accepted.headers["location"]) == (303, "./views/user_purchases")
    cookie = accepted.headers["set-cookie"]
    assert cookie.startswith("jstore_ui_key=read-secret;")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=" not in cookie
    assert browser_client.get("/ui/views").status_code == 200


def test_a_key_in_the_address_goes_through_the_login_and_back(browser_client):
    first = browser_client.get(f"/ui/views?key={READ_KEY}")
    assert first.headers["location"] == f"./login?next=views&key={READ_KEY}"
    second = browser_client.get(f"/ui/login?next=views&key={READ_KEY}")
    assert second.headers["location"] == "./views"
    assert browser_client.get("/ui/views").status_code == 200


def test_every_page_renders_with_relative_links_only(browser_client, demo):
    log_in(browser_client)
    for page in [*PAGES, "views/user_purchases"]:
        response = browser_client.get(f"/ui/{page}")
        assert response.status_code == 200, page
        links = re.findall(r'(?:href|src|action)="([^"]*)"', response.text)
        assert links, page
        assert [link for link in links if link.startswith("/") or "://" in link] == [], page


def test_the_view_page_shows_runs_quality_and_charts(browser_client, demo):
    log_in(browser_client)
    text = browser_client.get("/ui/views/user_purchases").text

    runs = re.findall(
        r'<td>(\w+)</td><td><span class="badge (\w+)">\w+</span></td>\s*'
        r'<td>([^<]+)</td><td class="num">(\d+)</td>',
        text,
    )
    assert runs == [
        ("publish", "success", "2024-05-01 06:00 → 2024-05-01 12:00", "20"),
        ("validate", "success", "2024-05-01 06:00 → 2024-05-01 12:00", "20"),
        ("publish", "success", "2024-05-01 00:00 → 2024-05-01 06:00", "20"),
        ("validate", "success", "2024-05-01 00:00 → 2024-05-01 06:00", "20"),
    ]
    assert "Published: 2024-05-01 00:00 → 2024-05-01 12:00</p>" in text
    assert '<span class="badge stale">stale</span>' in text
    assert "Drift above 0.2: amount_avg_1d, amount_avg_1h" in text
    for feature in ("count_1h", "amount_sum_30d"):
        assert f"<title>{feature}: distribution</title>" in text
        assert f"<title>{feature}: drift over time</title>" in text


def test_the_data_docs_page_is_served_under_ui_with_the_cookie(browser_client, demo):
    log_in(browser_client)
    text = browser_client.get("/ui/views/user_purchases").text
    (link,) = re.findall(r'class="data-docs" href="\.\./([^"]+)"', text)

    page = browser_client.get(f"/ui/{link}")
    assert page.status_code == 200
    assert '<section id="jstore-charts"' in page.text
    assert browser_client.get("/ui/quality/gx/").status_code == 404


def test_search_finds_views_features_and_services(browser_client, demo):
    log_in(browser_client)
    text = browser_client.get("/ui/search?q=merchant").text

    hits = re.findall(r"<tr><td>(\w+)</td><td><a href=\"([^\"]+)\">([^<]+)</a>", text)
    assert hits == [
        ("entity", "./entities#merchant", "merchant"),
        ("view", "./views/merchant_sales", "merchant_sales"),
        ("service", "./services#fraud_v1", "fraud_v1"),  # reads merchant_sales:amount_sum_7d
    ]
