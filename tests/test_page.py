"""The page at `/` of a real `zsmie serve`, driven in Debian's headless chromium: the README's
example post ranks its labels. Skips, saying why, where chromium or its driver is absent
(`make install` installs both where apt-get is at hand)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_demo):
    """`zsmie serve` on a free loopback port, until its /health answers."""
    port = free_port()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "zsmie", "serve", "--run", str(trained_demo),
                             "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, "zsmie serve did not answer within 300 s"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_served_api_refuses_bad_input_and_stays_up(server):
    too_many = {"samples": [{"text": "a b", "head": [0, 1], "tail": [2, 3]}] * 65, "labels": ["x"]}
    response = httpx.post(f"{server}/predict", json=too_many, timeout=60)
    assert response.status_code == 413 and response.json()["detail"].startswith("samples: 65 given")
    response = httpx.post(f"{server}/predict", content=b"x" * (1 << 21), timeout=60)
    assert response.status_code == 413 and response.json()["detail"].startswith("body: ")
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM.is_file() and DRIVER.is_file()):
        pytest.skip(f"{CHROMIUM} or {DRIVER} missing: `apt-get install chromium chromium-driver` "
                    "(`make install` does it where apt-get is at hand)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(DRIVER)))
    yield driver
    driver.quit()


def test_the_page_ranks_labels_for_the_readme_post(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/")
    WebDriverWait(browser, 60).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "info"), "task MRE"))
    fields = {"text": "Violinist Clara Weiss was born in Vienna in 1990", "head": "Clara Weiss",
              "tail": "Vienna", "labels": "place_of_birth, subsidiary, spouse, employer"}
    for name, value in fields.items():
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 120).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#ranked tbody tr")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranked tbody tr")
    labels = [row.find_element(By.CLASS_NAME, "label").text for row in rows]
    scores = [float(row.find_element(By.CLASS_NAME, "score").text) for row in rows]
    assert sorted(labels) == ["employer", "place_of_birth", "spouse", "subsidiary"]
    assert scores == sorted(scores, reverse=True)
    assert labels[0] == "place_of_birth"
    assert browser.find_element(By.ID, "prediction").text == "Prediction: place_of_birth"
    marks = browser.find_elements(By.CSS_SELECTOR, "#marked mark")
    assert [(m.get_attribute("class"), m.text) for m in marks] == [("head", "Clara Weiss"),
                                                                   ("tail", "Vienna")]
    # an entity that is not in the post is said on the page, not sent
    browser.find_element(By.ID, "tail").clear()
    browser.find_element(By.ID, "tail").send_keys("Paris")
    browser.find_element(By.ID, "submit").click()
    assert "tail entity is not in the post" in browser.find_element(By.ID, "error").text
