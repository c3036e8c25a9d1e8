"""The web page and the API docs in headless Chromium, with no network beyond the local server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                                reason="needs /usr/bin/chromium and /usr/bin/chromedriver "
                                       "(apt-get install chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}",
                 # no network: every host name but the local server's fails to resolve
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    monkeypatch.setenv("SE_AVOID_STATS", "true")  # selenium-manager must not phone home
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _cards(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [card.get_attribute("data-item-id") for card in driver.find_elements(By.CSS_SELECTOR, "#list .card")]


def _recent(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [item.get_attribute("data-item-id") for item in driver.find_elements(By.CSS_SELECTOR, "#recent-list li")]


def _history(live, user: str, key: str) -> list[str]:
    answer = httpx.get(f"{live.url}/users/{user}/history", params={"k": 10}, headers={"X-API-Key": key})
    return [item["item_id"] for item in answer.json()["items"]]


def test_clicking_a_card_refreshes_the_list(server: Callable, browser, shop):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    live = server(api_key="page-key").start()
    wait = WebDriverWait(browser, 20)
    browser.get(f"{live.url}/")
    browser.find_element(By.ID, "api-key").send_keys("page-key")
    browser.find_element(By.ID, "user").click()  # leaving the key field fires "change": users load
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#users option")) > 1)
    Select(browser.find_element(By.ID, "users")).select_by_value("u4")  # choosing a user loads the list
    wait.until(lambda d: d.find_element(By.ID, "list").get_attribute("data-requests") == "1")
    before = _cards(browser)
    assert len(before) == 12 and browser.find_element(By.ID, "user").get_attribute("value") == "u4"
    assert browser.find_elements(By.CSS_SELECTOR, "#list .card .reason")
    assert browser.find_element(By.ID, "error").text == ""
    # regression: the page never showed the user's own recent items
    wait.until(lambda d: d.find_element(By.ID, "recent").get_attribute("data-requests") == "1")
    assert browser.find_element(By.CSS_SELECTOR, "#recent h2").text == "Recently"
    assert _recent(browser) == _history(live, "u4", "page-key") and _recent(browser)

    target = browser.find_elements(By.CSS_SELECTOR, "#list .card")[1]
    clicked = target.get_attribute("data-item-id")
    wait.until(ready.element_to_be_clickable(target)).click()
    wait.until(lambda d: d.find_element(By.ID, "list").get_attribute("data-requests") == "2")
    after = _cards(browser)
    assert clicked not in after and after != before and len(after) == 12
    assert "clicked:" in browser.find_element(By.ID, "history").text
    wait.until(lambda d: d.find_element(By.ID, "recent").get_attribute("data-requests") == "2")
    assert _recent(browser)[0] == clicked and _recent(browser) == _history(live, "u4", "page-key")

    stored = httpx.get(f"{live.url}/health").json()["events"]
    assert stored == 1  # the page sent one click event, with the key
    browser.find_element(By.ID, "load").click()  # the button reloads the same user's list
    wait.until(lambda d: d.find_element(By.ID, "list").get_attribute("data-requests") == "3")
    assert _cards(browser) == after


def test_the_recent_items_show_titles_as_text_never_as_html(server: Callable, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    live = server().start()
    title = '<img src=x onerror="document.body.dataset.owned=1"><b>bold</b>'
    httpx.post(f"{live.url}/items", json={"items": [{"item_id": "<i>x</i>", "title": title, "category": "<script>"}]})
    httpx.post(f"{live.url}/events", json={"events": [{"user_id": "<u>", "item_id": "<i>x</i>", "type": "view"}]})
    browser.get(f"{live.url}/")
    browser.find_element(By.ID, "user").send_keys("<u>")
    browser.find_element(By.ID, "load").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "recent").get_attribute("data-requests") == "1")
    first = browser.find_element(By.CSS_SELECTOR, "#recent-list li")
    assert first.text.startswith(title) and first.get_attribute("data-item-id") == "<i>x</i>"
    assert not browser.find_elements(By.CSS_SELECTOR, "#recent img, #recent b, #recent script")
    assert browser.execute_script("return document.body.dataset.owned") is None


def _loaded(driver) -> list[str]:
    """Every resource the page has fetched (scripts, styles, the OpenAPI document, ...)."""
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


@pytest.mark.parametrize("api_key", [None, "docs-key"])
def test_the_api_docs_render_without_network(server: Callable, browser, api_key: str | None):
    # regression: /docs was a blank page offline, its Swagger UI coming from a CDN
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    live = server(api_key=api_key).start()
    browser.get(f"{live.url}/docs")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) >= 8)
    summaries = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path"))
    assert "/recommend" in summaries and "/items/{item_id}/similar" in summaries
    assert browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text.startswith("recfunnel")
    if api_key:
        assert browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .authorize")  # the X-API-Key box
    fetched = _loaded(browser)
    assert any(url.endswith("/openapi.json") for url in fetched) and any(url.endswith(".js") for url in fetched)
    assert all(url.startswith(live.url + "/") for url in fetched), fetched
