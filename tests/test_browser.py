"""The web page in a real browser: `anirec serve` as a subprocess on loopback, driven in Debian's
chromium with selenium + chromium-driver (installed by .ci/run with apt).

Picks two titles through the autocomplete, submits, and checks 10 results that each say
"because you liked" one of them; saves a screenshot (to $ANIREC_SCREENSHOT when set: the
README's docs/serve-page.png is made that way). Without chromium it is skipped locally, but
under CI (CI=true) a missing browser is a failure: the test must run there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anirec.recommenders import DEFAULT_METHOD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)


def _need_browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(mal_catalog, mal_dir, tmp_path_factory):
    _need_browser()
    from anirec.fitting import fit_to_folder, method_spec

    # what `anirec fit` makes without --method: the page serves the product default
    folder = tmp_path_factory.mktemp("page") / DEFAULT_METHOD
    fit_to_folder(method_spec(DEFAULT_METHOD), str(mal_dir), mal_catalog[1], folder, progress=False)
    port = _free_port()
    log = tmp_path_factory.mktemp("page-log") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "anirec", "serve", "--recommender", str(folder),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wait_for(url: str, proc, log: Path, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"anirec serve exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"anirec serve did not answer {url}/health in {timeout:.0f} s")


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1500"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _pick(driver, wait, text: str, title: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    box = driver.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    option = wait.until(EC.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class,'suggestion') and starts-with(normalize-space(.), \"{title}\")]")))
    option.click()
    wait.until(lambda d: title in [c.text.rstrip("\u00d7").strip() for c in d.find_elements(By.CSS_SELECTOR, "#chips .chip")])


def test_pick_two_titles_and_get_ten_explained_results(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    wait.until(lambda d: DEFAULT_METHOD in d.find_element(By.ID, "about").text)  # /options and /health answered
    _pick(browser, wait, "steins", "Steins;Gate")
    _pick(browser, wait, "haikyu", "Haikyuu!!")
    browser.find_element(By.ID, "recommend").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 10)
    results = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert not browser.find_element(By.ID, "error").is_displayed()
    titles = [r.find_element(By.CSS_SELECTOR, ".title").text for r in results]
    assert len(set(titles)) == 10 and not {"Steins;Gate", "Haikyuu!!"} & set(titles)
    for r in results:
        because = r.find_element(By.CSS_SELECTOR, ".because").text
        assert because.startswith("because you liked ") and ("Steins;Gate" in because or "Haikyuu!!" in because)
        assert "MAL " in r.find_element(By.CSS_SELECTOR, ".meta").text
    shot = Path(os.environ.get("ANIREC_SCREENSHOT") or tmp_path / "serve-page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_page_shows_an_error_line_for_a_bad_request(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    wait.until(lambda d: DEFAULT_METHOD in d.find_element(By.ID, "about").text)
    browser.find_element(By.ID, "recommend").click()  # nothing picked
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "Pick at least one anime" in browser.find_element(By.ID, "error").text
    browser.find_element(By.CSS_SELECTOR, "#filters summary").click()
    browser.find_element(By.ID, "year-min").send_keys("2020")
    browser.find_element(By.ID, "year-max").send_keys("2010")
    browser.find_element(By.ID, "text-query").send_keys("time travel")
    browser.find_element(By.ID, "recommend").click()
    wait.until(lambda d: "swap them" in d.find_element(By.ID, "error").text)
