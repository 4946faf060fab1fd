"""The web page in a real browser (Debian's Chromium, headless) against a real server.

Selenium drives ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` (``make browser``
installs both); it never downloads a browser or a driver. Without them the tests are
skipped, unless ``THEO_BROWSER_TESTS=required`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import av
import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import FIXTURES, MODELS_DIR, word_errors
from tests.integration.conftest import (
    TINY,
    RunningServer,
    post_audio,
    start_server,
    stop_server,
)

CHROMIUM = Path(os.environ.get("THEO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("THEO_CHROMEDRIVER", "/usr/bin/chromedriver"))
JFK = FIXTURES / "jfk.flac"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
T = TypeVar("T")


def fake_microphone_wav(source: Path, target: Path, rate: int = 48_000) -> Path:
    """``source`` as the 16-bit mono WAV Chromium's fake microphone plays (in a loop), with a
    second of silence before and two after, so each loop ends its last sentence."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(str(source)) as container:
        frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    frames += resampler.resample(None)
    speech = np.concatenate([f.to_ndarray().ravel() for f in frames]).astype(np.int16)
    samples = np.concatenate([np.zeros(rate, np.int16), speech, np.zeros(2 * rate, np.int16)])
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return target


@dataclass
class Browser:
    """A headless Chromium and what it has requested so far (from its performance log)."""

    driver: webdriver.Chrome
    downloads: Path
    requests: list[str] = field(default_factory=list)
    responses: list[tuple[str, str]] = field(default_factory=list)  # (url, MIME type)
    console: list[str] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, until: Callable[[], T], timeout: float = 30, what: str = "") -> T:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: until())
        except TimeoutException:
            notice = self.text("notice-text") if self.visible("notice") else ""
            pytest.fail(f"timed out waiting for {what or until}; notice: {notice!r}")

    def element(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return str(self.element(element_id).text)

    def visible(self, element_id: str) -> bool:
        return bool(self.element(element_id).is_displayed())

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def read_logs(self) -> None:
        """Move the browser's new network requests and console messages into the lists."""
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            elif message["method"] == "Network.responseReceived":
                response = message["params"]["response"]
                self.responses.append((response["url"], response["mimeType"]))
            elif message["method"] == "Network.webSocketCreated":
                self.requests.append(message["params"]["url"])
        console = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        self.console += [str(entry["message"]) for entry in console]

    def assert_only_origin(self, origin: str) -> None:
        """Every request so far went to ``origin`` (or stayed in the page: data:, blob:)."""
        self.read_logs()
        own = urlsplit(origin)
        foreign = [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and (urlsplit(url).scheme not in ("http", "ws") or urlsplit(url).netloc != own.netloc)
        ]
        assert foreign == [], "the browser contacted another host"
        blocked = [m for m in self.console if "Content Security Policy" in m]
        assert blocked == [], "a page tried to load something from another host"

    def start_page(self, server: RunningServer, model: str = TINY) -> None:
        """Open the page and wait until the model list is there; pick ``model``."""
        self.open(f"{server.base_url}/")
        self.wait(lambda: model in self.options("model"), what="the model list")
        Select(self.element("model")).select_by_value(model)

    def options(self, select_id: str) -> list[str]:
        return [str(o.get_attribute("value")) for o in Select(self.element(select_id)).options]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        message = (
            f"{', '.join(missing)} not found: run `make browser` (apt chromium chromium-driver)"
        )
        if os.environ.get("THEO_BROWSER_TESTS") == "required":
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("browser")
    microphone = fake_microphone_wav(JFK, folder / "jfk-48k.wav")
    downloads = folder / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--mute-audio",
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        # No calls home from the browser itself: the machine may be offline.
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # An explicit driver: Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()


def test_a_file_streams_into_the_page_with_timed_segments_and_downloads(
    server: RunningServer, browser: Browser
) -> None:
    browser.start_page(server)
    browser.element("file").send_keys(str(JFK))
    browser.wait(lambda: browser.text("transcript"), what="the first text")
    segments = browser.wait(
        lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#segments .segment"),
        what="the segments",
    )
    assert word_errors(JFK_TEXT, browser.text("transcript")) <= 2
    assert browser.text("detected-language") == "Language: English"
    assert not browser.visible("notice")
    # The text came as a stream, then verbose_json gave the segments.
    browser.read_logs()
    answers = [mime for url, mime in browser.responses if url.endswith("/audio/transcriptions")]
    assert answers == ["text/event-stream", "application/json"]

    # The .srt download is byte for byte the API's own SRT.
    api_srt = post_audio(server, "jfk.flac", JFK.read_bytes(), response_format="srt").text
    browser.element("download-srt").click()
    saved = browser.downloads / "jfk.srt"
    browser.wait(saved.is_file, timeout=10, what="the .srt download")
    assert saved.read_text(encoding="utf-8") == api_srt

    # A click on a segment moves the player to its start.
    verbose = post_audio(server, "jfk.flac", JFK.read_bytes(), response_format="verbose_json")
    starts = [segment["start"] for segment in verbose.json()["segments"]]
    assert len(segments) == len(starts) >= 2
    segments[1].click()
    time_now = browser.wait(
        lambda: browser.script("return document.getElementById('player').currentTime") or None,
        what="the player's time",
    )
    assert starts[1] <= time_now < starts[1] + 1.5
    assert "playing" in str(segments[1].get_attribute("class"))
    browser.assert_only_origin(server.base_url)


def test_live_captions_from_the_microphone(server: RunningServer, browser: Browser) -> None:
    browser.start_page(server)
    browser.element("tab-live").click()
    browser.element("record").click()
    browser.wait(lambda: "Listening" in browser.text("live-status"), what="the live session")
    browser.wait(
        lambda: "country" in browser.text("captions").lower(), timeout=60, what="live captions"
    )
    level = browser.script("return document.getElementById('level-bar').style.clipPath")
    assert level.startswith("inset(")
    browser.element("record").click()
    browser.wait(lambda: browser.text("record-label") == "Start recording", what="the stop")
    assert browser.text("live-status") == "Stopped."
    assert not browser.visible("notice")
    finals = browser.driver.find_elements(By.CSS_SELECTOR, "#captions li:not(.partial) .text")
    heard = set(" ".join(str(e.text) for e in finals).lower().replace(",", " ").split())
    heard = {word.strip(".?!") for word in heard}
    # The JFK clip, as final captions. How the browser's chunks fall decides where an
    # utterance is cut, and tiny.en then hears "ask" or "asked": not every word is pinned.
    jfk = {"so", "my", "fellow", "americans", "ask", "not", "what", "your", "country", "can"}
    assert "country" in heard and len(heard & jfk) >= 6, heard
    browser.assert_only_origin(server.base_url)


PAGES = ["/", "/docs", "/redoc", "/openapi.json", "/docs.json", "/health", "/livez", "/metrics"]


def test_no_page_makes_the_browser_contact_another_host(
    server: RunningServer, browser: Browser
) -> None:
    browser.read_logs()
    for path in PAGES:
        browser.open(f"{server.base_url}{path}")
        if path in ("/docs", "/redoc"):
            browser.wait(
                lambda: browser.driver.find_elements(By.CSS_SELECTOR, ".opblock"),
                what=f"Swagger UI on {path}",
            )
            assert browser.driver.current_url == f"{server.base_url}/docs"
        if path == "/":
            assert browser.driver.title == "Theo · speech to text"
            browser.wait(lambda: browser.options("model"), what="the model list")
        time.sleep(0.3)  # late requests (favicons) land in the log too
    browser.assert_only_origin(server.base_url)
    assert any(url.endswith("/web/swagger-ui/swagger-ui-bundle.js") for url in browser.requests)


def api_error(response: httpx.Response) -> str:
    message: str = response.json()["error"]["message"]
    return message


def test_the_servers_errors_are_shown_in_plain_words(
    server: RunningServer, browser: Browser
) -> None:
    # A model that is gone (the page lists only installed ones, so add one to the list).
    browser.start_page(server)
    browser.script(
        "const s = document.getElementById('model');"
        "s.add(new Option('no-such-model', 'no-such-model')); s.value = 'no-such-model';"
    )
    browser.element("file").send_keys(str(JFK))
    expected = api_error(post_audio(server, "jfk.flac", JFK.read_bytes(), model="no-such-model"))
    browser.wait(lambda: browser.visible("notice"), what="the error message")
    assert browser.text("notice-text") == expected
    assert browser.text("job-status") == f"Failed: {expected}"

    # A file that is not audio.
    browser.start_page(server)
    bad = FIXTURES / "bad" / "text_renamed.wav"
    browser.element("file").send_keys(str(bad))
    expected = api_error(post_audio(server, bad.name, bad.read_bytes()))
    browser.wait(lambda: browser.visible("notice"), what="the error message")
    assert browser.text("notice-text") == expected


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with THEO_API_KEY set, serving tiny.en only (it starts faster)."""
    folder = tmp_path_factory.mktemp("keyed")
    models = folder / "models"
    (models / TINY).mkdir(parents=True)
    for item in (MODELS_DIR / TINY).iterdir():
        try:
            os.link(item, models / TINY / item.name)
        except OSError:
            shutil.copy2(item, models / TINY / item.name)
    running = start_server(folder, models_dir=models, env={"THEO_API_KEY": "page-test-key"})
    yield running
    stop_server(running)


def test_the_page_works_with_an_api_key(keyed_server: RunningServer, browser: Browser) -> None:
    url = keyed_server.base_url
    browser.open(f"{url}/")
    browser.wait(lambda: browser.visible("notice"), what="the missing key's message")
    assert browser.text("notice-text") == api_error(httpx.get(f"{url}/v1/models"))
    assert browser.visible("key-panel")

    wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    browser.element("api-key").send_keys("wrong")
    browser.element("key-submit").click()
    browser.wait(lambda: browser.text("notice-text") == api_error(wrong), what="the 401 message")

    browser.element("api-key").clear()
    browser.element("api-key").send_keys("page-test-key")
    browser.element("key-submit").click()
    browser.wait(lambda: TINY in browser.options("model"), what="the model list")
    assert not browser.visible("notice")
    browser.element("file").send_keys(str(JFK))
    browser.wait(
        lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#segments .segment"),
        what="the segments",
    )
    assert word_errors(JFK_TEXT, browser.text("transcript")) <= 2

    # Live captions send the key as a WebSocket subprotocol.
    browser.element("tab-live").click()
    browser.element("record").click()
    browser.wait(
        lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#captions li:not(.partial)"),
        timeout=60,
        what="a live caption",
    )
    browser.element("record").click()
    browser.wait(lambda: browser.text("record-label") == "Start recording", what="the stop")
    assert not browser.visible("notice")
    browser.script("sessionStorage.clear()")


SCREENSHOTS = os.environ.get("THEO_WEB_SCREENSHOTS")  # a folder, e.g. docs


def mixed_languages_wav(target: Path) -> Path:
    """English, French, German, Spanish and Portuguese speech, 2.5 s apart (~100 s)."""
    clips = ["jfk.flac", "fleurs-fr-000.ogg", "fleurs-de-000.ogg", "1089-134686-0000.flac"]
    clips += ["fleurs-es-000.ogg", "fleurs-pt-000.ogg"]
    rate = 16_000
    pause = np.zeros(int(2.5 * rate), np.int16)
    parts = []
    for name in clips:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        with av.open(str(FIXTURES / name)) as container:
            frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        frames += resampler.resample(None)
        parts += [np.concatenate([f.to_ndarray().ravel() for f in frames]), pause]
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.concatenate(parts).astype(np.int16).tobytes())
    return target


@pytest.mark.skipif(not SCREENSHOTS, reason="set THEO_WEB_SCREENSHOTS=docs to refresh them")
def test_screenshots(server: RunningServer, browser: Browser, tmp_path: Path) -> None:
    """docs/web-*.png: the page idle, mid-stream, done, live, and on a phone."""
    folder = Path(str(SCREENSHOTS))
    driver = browser.driver

    def shoot(name: str) -> None:
        browser.script("document.activeElement && document.activeElement.blur()")
        driver.save_screenshot(str(folder / name))

    driver.set_window_size(1280, 1180)
    browser.start_page(server, model="faster-whisper-base")
    shoot("web-idle.png")

    recording = mixed_languages_wav(tmp_path / "five-languages.wav")
    browser.element("file").send_keys(str(recording))
    browser.wait(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#transcript .arrived")) >= 2,
        timeout=120,
        what="a few deltas",
    )
    shoot("web-stream.png")
    browser.wait(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#segments .segment"),
        timeout=240,
        what="the segments",
    )
    driver.find_elements(By.CSS_SELECTOR, "#segments .segment")[3].click()
    browser.script("document.getElementById('player').pause()")
    shoot("web-segments.png")

    browser.start_page(server, model=TINY)
    browser.element("tab-live").click()
    browser.element("record").click()
    browser.wait(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#captions li:not(.partial)")) >= 3,
        timeout=90,
        what="live captions",
    )
    shoot("web-live.png")
    browser.element("record").click()
    browser.wait(lambda: browser.text("record-label") == "Start recording", what="the stop")

    driver.set_window_size(390, 844)
    browser.start_page(server)
    shoot("web-phone.png")
    driver.set_window_size(1280, 1000)
