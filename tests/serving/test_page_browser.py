"""The web page in headless Chromium: pick a user, see cards, click one, see the list change."""

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
                 "--no-first-run", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
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

    target = browser.find_elements(By.CSS_SELECTOR, "#list .card")[1]
    clicked = target.get_attribute("data-item-id")
    wait.until(ready.element_to_be_clickable(target)).click()
    wait.until(lambda d: d.find_element(By.ID, "list").get_attribute("data-requests") == "2")
    after = _cards(browser)
    assert clicked not in after and after != before and len(after) == 12
    assert "clicked:" in browser.find_element(By.ID, "history").text

    stored = httpx.get(f"{live.url}/health").json()["events"]
    assert stored == 1  # the page sent one click event, with the key
    browser.find_element(By.ID, "load").click()  # the button reloads the same user's list
    wait.until(lambda d: d.find_element(By.ID, "list").get_attribute("data-requests") == "3")
    assert _cards(browser) == after
