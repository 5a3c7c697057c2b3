"""The page at `/` of a real `zsmie serve`, driven in Debian's headless chromium: the README's
example post ranks its labels; the example button, entities chosen by selection or by
occurrence, the open set's explanation, MET's wording, a 400 px wide window, no failed loads;
an image run takes an image with the post, a text-only run says it does not use images.
Screenshots are kept under the test's temporary folder. Skips, saying why, where chromium or
its driver is absent (`make test` installs both where apt-get is at hand)."""

from __future__ import annotations

import os
import re
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
    """`zsmie serve` of the text-only demo on a free loopback port, until /health answers."""
    yield from _serve(trained_demo)


@pytest.fixture(scope="module")
def image_server(trained_image_demo):
    """`zsmie serve` of the demo trained as an image run (tiny random ViT)."""
    yield from _serve(trained_image_demo)


def _serve(run: Path):
    port = free_port()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "zsmie", "serve", "--run", str(run),
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
    response = httpx.post(f"{server}/predict", content=b"x" * (1 << 21), timeout=60,
                          headers={"Content-Type": "application/json"})
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console: failed loads
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


def _wait_for_ranking(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 120).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#ranked tbody tr")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranked tbody tr")
    return [(row.find_element(By.CLASS_NAME, "label").text,
             row.find_element(By.CLASS_NAME, "score").text) for row in rows]


def _open(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1200, 1000)
    browser.get(f"{server}/")
    WebDriverWait(browser, 60).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "info"), "task MRE"))
    return By


def _marks(browser, By):
    marks = browser.find_elements(By.CSS_SELECTOR, "#marked mark")
    return [(m.get_attribute("class"), m.text) for m in marks]


def test_the_example_button_fills_a_post_and_scores_are_explained(server, browser, tmp_path):
    By = _open(browser, server)
    # a text-only run: no image input, and the page says why
    assert not browser.find_element(By.ID, "image-box").is_displayed()
    assert browser.find_element(By.ID, "no-images").text == (
        "This run reads text only: images are not used.")
    # placeholders say what to do; they do not look like a filled-in post
    for field in ("text", "head", "tail", "labels"):
        element = browser.find_element(By.ID, field)
        assert element.get_attribute("value") == ""
        assert element.get_attribute("placeholder").lower().startswith(("type", "select", "for example"))
    browser.find_element(By.ID, "example").click()
    assert browser.find_element(By.ID, "text").get_attribute("value") == (
        "Violinist Clara Weiss was born in Vienna in 1990")
    assert _marks(browser, By) == [("head", "Clara Weiss"), ("tail", "Vienna")]
    browser.find_element(By.ID, "submit").click()
    ranked = _wait_for_ranking(browser)
    assert ranked[0][0] == "place_of_birth"
    assert all(re.fullmatch(r"-?\d+\.\d{4}", score) for _, score in ranked)  # 4 decimals
    explain = browser.find_element(By.ID, "explain")
    assert explain.is_displayed() and explain.text.startswith("Scores: ")
    legend = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#legend mark")
              if m.is_displayed()]
    assert legend == ["head", "tail"]
    browser.save_screenshot(str(tmp_path / "example.png"))
    assert (tmp_path / "example.png").stat().st_size > 0


def test_entities_by_selection_and_by_occurrence_ignoring_case(server, browser):
    By = _open(browser, server)
    post = "Paris Hilton flew to Paris"
    browser.find_element(By.ID, "text").send_keys(post)
    # select "Paris Hilton" in the post and take it as the head
    select = "const t = document.getElementById('text'); t.focus(); t.setSelectionRange(%d, %d);"
    browser.execute_script(select % (0, 12))
    browser.find_element(By.ID, "use-head").click()
    assert browser.find_element(By.ID, "head").get_attribute("value") == "Paris Hilton"
    # the tail typed in lower case: both "Paris" match, the one outside the head is taken
    browser.find_element(By.ID, "tail").send_keys("paris")
    choice = browser.find_element(By.ID, "tail-occurrence")
    assert choice.is_displayed() and len(choice.find_elements(By.TAG_NAME, "option")) == 2
    assert choice.get_attribute("value") == "1"
    assert _marks(browser, By) == [("head", "Paris Hilton"), ("tail", "Paris")]
    between = "return document.querySelectorAll('#marked mark')[1].previousSibling.textContent"
    assert browser.execute_script(between) == " flew to "
    browser.find_element(By.ID, "labels").send_keys("place_of_birth, spouse, residence")
    browser.find_element(By.ID, "submit").click()
    assert len(_wait_for_ranking(browser)) == 3
    # picking the first occurrence instead makes the tail the head's own word: said, not sent
    from selenium.webdriver.support.ui import Select

    Select(choice).select_by_value("0")
    assert _marks(browser, By) == [("head", "Paris Hilton")]
    # a selection that is only spaces is refused with a hint
    browser.execute_script(select % (12, 13))
    browser.find_element(By.ID, "use-tail").click()
    assert "Select the words" in browser.find_element(By.ID, "error").text


def test_the_open_set_says_which_rule_answered_none(server, browser):
    By = _open(browser, server)
    health = httpx.get(f"{server}/health", timeout=10).json()
    assert health["open_set"] and health["open_set_rule"] == "top"
    threshold = health["open_set_threshold"]
    assert threshold == round(threshold, 4)
    browser.find_element(By.ID, "example").click()
    labels = browser.find_element(By.ID, "labels")
    labels.clear()
    labels.send_keys("stock price, weather, chemical element")
    browser.find_element(By.ID, "open_set").click()
    browser.find_element(By.ID, "submit").click()
    ranked = _wait_for_ranking(browser)
    assert float(ranked[0][1]) < threshold
    assert browser.find_element(By.ID, "prediction").text == "Prediction: none of these"
    explain = browser.find_element(By.ID, "explain").text
    assert f"the best score must reach {threshold:.4f}" in explain and '"none of these"' in explain


def test_entity_typing_runs_say_entity_and_suggest_types(server, browser):
    By = _open(browser, server)
    # the page as an MET run's /health makes it (the served demo is a relation run)
    browser.execute_script("applyHealth({task: 'met', model: 'proto', open_set: false})")
    assert browser.find_element(By.ID, "head-label").text == "Entity"
    assert not browser.find_element(By.ID, "tail-box").is_displayed()
    assert browser.find_element(By.ID, "labels-label").text.startswith("Candidate entity types")
    assert "person, location" in browser.find_element(By.ID, "labels").get_attribute("placeholder")
    browser.find_element(By.ID, "example").click()
    assert _marks(browser, By) == [("head", "Vienna State Opera")]
    assert browser.find_element(By.ID, "labels").get_attribute("value").startswith("person, location")
    assert "task MET: the type of one entity" in browser.find_element(By.ID, "info").text


def test_the_page_fits_400_pixels_and_loads_nothing_that_fails(server, browser, tmp_path):
    By = _open(browser, server)
    browser.get_log("browser")  # drop what came before
    browser.set_window_size(400, 900)
    browser.get(f"{server}/")
    browser.find_element(By.ID, "example").click()
    browser.find_element(By.ID, "submit").click()
    _wait_for_ranking(browser)
    assert browser.execute_script("return window.innerWidth") <= 400
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"), "scrolls sideways at 400 px"
    browser.save_screenshot(str(tmp_path / "page-400px.png"))
    assert (tmp_path / "page-400px.png").stat().st_size > 0
    failed = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert failed == []  # no favicon 404, no script error
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
    assert icon.startswith("data:")


def test_an_image_run_sends_the_chosen_image_with_the_post(image_server, browser, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1200, 1000)
    browser.get(f"{image_server}/")
    wait = WebDriverWait(browser, 60)
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "info"), "task MRE"))
    wait.until(expected_conditions.visibility_of_element_located((By.ID, "image")))
    assert not browser.find_element(By.ID, "no-images").is_displayed()
    browser.find_element(By.ID, "example").click()
    browser.find_element(By.ID, "submit").click()
    without = _wait_for_ranking(browser)

    photo = tmp_path / "photo.png"  # 1600 x 800: the page sends it as 512 x 256
    image = Image.new("RGB", (1600, 800), (200, 30, 30))
    image.paste((20, 20, 210), (0, 0, 800, 400))
    image.save(photo)
    browser.find_element(By.ID, "image").send_keys(str(photo))
    preview = wait.until(expected_conditions.visibility_of_element_located((By.ID, "preview")))
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                  preview) == [512, 256]
    browser.execute_script("document.getElementById('result').textContent = ''")
    browser.find_element(By.ID, "submit").click()
    with_image = _wait_for_ranking(browser)
    assert with_image != without  # the image reached the model
    browser.save_screenshot(str(tmp_path / "image-run.png"))
    # the page's scores are the API's for the same post and image (what the page sent)
    sample = {"id": "post", "text": "Violinist Clara Weiss was born in Vienna in 1990",
              "head": [10, 21], "tail": [34, 40], "image_data": preview.get_attribute("src")}
    labels = browser.find_element(By.ID, "labels").get_attribute("value").split(", ")
    answer = httpx.post(f"{image_server}/predict", timeout=60,
                        json={"samples": [sample], "labels": labels}).json()
    assert [(r["label"], f"{r['score']:.4f}") for r in answer["predictions"][0]["ranked"]] == with_image

    # "Remove image" sends the post alone again
    browser.find_element(By.ID, "clear-image").click()
    assert not preview.is_displayed()
    browser.execute_script("document.getElementById('result').textContent = ''")
    browser.find_element(By.ID, "submit").click()
    assert _wait_for_ranking(browser) == without
    # a file the browser cannot read as an image is said on the page, not sent
    (tmp_path / "notes.png").write_text("not an image")
    browser.find_element(By.ID, "image").send_keys(str(tmp_path / "notes.png"))
    wait.until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "error"), "notes.png is not an image"))
    assert not preview.is_displayed()
