"""The search page in a real browser: Debian's Chromium, headless, driven by Playwright.

A server is started on a free loopback port (uvicorn in a background thread); the test types
a query, checks the result images load, uploads an image, checks the messages for an empty
query and an unsupported file, and saves a screenshot (printed, and copied to
``test-artifacts/browser.png`` at the repository root).
"""

import shutil
import time
from pathlib import Path

import pytest

import server_support as sup

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def base_url():
    with sup.running_server(sup.make_app(), log_level="warning") as url:
        yield url


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is not installed (/usr/bin/chromium): run 'apt-get install -y chromium' "
                    "(make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-background-networking", "--disable-component-update",
                                           "--no-first-run", "--disable-dev-shm-usage"])
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def _wait(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression until it is true (``page.wait_for_function`` evaluates its
    predicate with ``eval``, which the page's Content-Security-Policy rightly refuses)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        page.wait_for_timeout(50)


def _images_loaded(page) -> list:
    return page.eval_on_selector_all("#results .card img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")


def test_search_page_end_to_end(page, base_url, tmp_path):
    page.goto(base_url + "/")
    _wait(page, "document.querySelectorAll('#label option').length > 1")

    # an empty query gets a clear message
    page.click("#search-btn")
    assert "Type some words" in page.inner_text("#status")

    # a text query: thumbnails load, titles and scores shown, the colour is right
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .card img")
    _wait(page, "[...document.querySelectorAll('#results .card img')]"
                           ".every(e => e.complete && e.naturalWidth > 0)")
    widths = _images_loaded(page)
    assert len(widths) == 12 and all(w > 0 for w in widths)
    assert "red square" in page.inner_text("#results .card .title")
    assert "ms" in page.inner_text("#status")
    float(page.inner_text("#results .card .score"))

    # label filter
    page.select_option("#label", "green")
    page.press("#query", "Enter")
    _wait(page, "[...document.querySelectorAll('#results .card .meta span:first-child')]"
                           ".every(e => e.textContent === 'green')")
    page.select_option("#label", "")

    # an image file as the query
    query_png = tmp_path / "blue-disc.png"
    query_png.write_bytes(sup.png_bytes(sup.draw(sup.COLOURS["blue"], "disc", seed=7)))
    page.set_input_files("#file", str(query_png))
    _wait(page, "document.getElementById('status').textContent.includes('blue-disc.png')")
    _wait(page, "[...document.querySelectorAll('#results .card img')]"
                           ".every(e => e.complete && e.naturalWidth > 0)")
    assert page.inner_text("#results .card .meta span") == "blue"
    assert all(w > 0 for w in _images_loaded(page))

    # more like this on the first result
    first_id = page.get_attribute("#results .card", "data-id")
    page.click("#results .card button.more")
    _wait(page, "document.getElementById('status').textContent.includes('items like')")
    assert first_id not in page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.id)")

    shot = tmp_path / "browser.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "browser.png")
    print(f"browser screenshot: {shot} (copied to {ARTIFACTS / 'browser.png'})")

    # a non-image file with an image name: the server's message is shown
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a picture")
    page.set_input_files("#file", str(fake))
    _wait(page, "document.getElementById('status').className === 'error'")
    assert "Unsupported file" in page.inner_text("#status") and "fake.png" in page.inner_text("#status")
    assert page.eval_on_selector_all("#results .card", "els => els.length") == 0   # not the last query's
    # and a file of another kind altogether is refused in the page
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    _wait(page, "document.querySelectorAll('#results .card').length === 12")
    page.set_input_files("#file", str(other))
    assert "not an image or a sound" in page.inner_text("#status")
    assert page.eval_on_selector_all("#results .card", "els => els.length") == 0
    # an SVG drawing is refused in the page, and the picker does not offer it
    drawing = tmp_path / "cat.svg"
    drawing.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>')
    page.set_input_files("#file", str(drawing))
    assert "SVG drawing" in page.inner_text("#status")
    accept = page.get_attribute("#file", "accept")
    assert "image/png" in accept and "image/*" not in accept
    assert page.get_attribute("#k", "max") == "1000"      # the server's max_k, from /api/info
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_api_documentation_renders_offline(page, base_url):
    page.goto(base_url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "/api/search" in page.inner_text(".swagger-ui")


def test_a_search_is_a_shareable_link(page, base_url):
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base_url + "/?q=a%20green%20disc&k=3")
    _wait(page, "document.querySelectorAll('#results .card').length === 3")
    assert page.input_value("#query") == "a green disc" and page.input_value("#k") == "3"
    assert page.inner_text("#results .card .meta span") == "green"
    # a search typed on the page becomes the page's URL
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    _wait(page, "location.search.includes('q=a+red+square')")
    _wait(page, "document.querySelector('#results .card .meta span').textContent === 'red'")
    assert "k=3" in page.evaluate("location.search")
    page.go_back()
    _wait(page, "document.getElementById('query').value === 'a green disc'")
    _wait(page, "document.querySelector('#results .card .meta span').textContent === 'green'")
    # back to the page as first opened, before any search: no results, no message
    page.goto(base_url + "/")
    _wait(page, "document.querySelectorAll('#modality option').length > 0")
    page.fill("#query", "a blue disc")
    page.press("#query", "Enter")
    _wait(page, "document.querySelectorAll('#results .card').length > 0")
    page.go_back()
    _wait(page, "location.search === ''")
    _wait(page, "document.querySelectorAll('#results .card').length === 0")
    assert page.input_value("#query") == "" and page.inner_text("#status") == ""
    page.goto(base_url + "/docs")                      # Swagger UI runs under the policy too
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert violations == []


def test_a_model_of_feature_vectors_offers_no_file_to_drop(page, tmp_path):
    """A model of feature vectors embeds neither texts nor files: the page says so, and does not
    send its reader to a drop zone it hides."""
    from jointspace.server.app import create_app

    sup.feature_model_index(tmp_path, n_components=4)
    with sup.running_server(create_app(tmp_path / "idx")) as url:
        page.goto(url + "/")
        _wait(page, "document.querySelectorAll('#modality option').length > 0")
        assert page.get_attribute("#query", "placeholder") == "This model takes no text or file queries"
        assert not page.is_visible("#drop")


def test_a_file_can_be_picked_from_the_keyboard(page, base_url):
    """The drop zone is in the tab order: Enter or Space on it opens the file picker, so a file
    query does not need a mouse.  What the page does is pinned: the key clicks the file input
    once, while the key press's user activation lets the browser open a picker.  (Whether
    headless Chromium then reports a picker to Playwright is not reliable: it missed about one
    in two in a loop of fresh pages, with the click made each time.)"""
    for key in ("Enter", " "):
        page.goto(base_url + "/")
        _wait(page, "document.querySelectorAll('#label option').length > 1")
        page.evaluate("""() => { window.pickerClicks = 0;
            const input = document.getElementById('file'), click = input.click.bind(input);
            input.click = () => { window.pickerClicks += 1; window.activeOnClick = navigator.userActivation.isActive;
                                  click(); }; }""")
        page.focus("#drop")
        page.keyboard.press(key)
        assert page.evaluate("[window.pickerClicks, window.activeOnClick]") == [1, True], key
        assert "Type some words" not in page.inner_text("#status")   # the key searched nothing


def test_the_page_loads_without_a_console_error(page, base_url):
    """Nothing the page asks for on load is refused, its icon included (a 404 for /favicon.ico
    was a console error on every load)."""
    context = page.context.browser.new_context()   # a fresh profile: no icon cached by the tests before
    try:
        fresh = context.new_page()
        errors, refused = [], []
        fresh.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        fresh.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        fresh.goto(base_url + "/")
        _wait(fresh, "document.querySelectorAll('#label option').length > 1")
        fresh.wait_for_timeout(1_000)              # the icon is asked for after the page has loaded
        assert errors == [] and refused == []
    finally:
        context.close()


def test_a_sound_the_browser_gives_no_type_is_sent_by_its_suffix(page, tmp_path):
    """A file the system names no type for (an .aiff or .mp3 where no MIME type is registered)
    is judged by its suffix: the page refused the AIFF and MP3 sounds the server takes as 'not
    an image or a sound file'."""
    import io

    import soundfile as sf

    from jointspace.server.app import create_app

    setup = sup.audio_setup()
    with sup.running_server(create_app(setup["index"])) as url:
        page.goto(url + "/")
        _wait(page, "document.querySelectorAll('#modality option').length > 0")
        for name, fmt in (("tone.aiff", "AIFF"), ("tone.aif", "AIFF"), ("tone.mp3", "MP3")):
            buf = io.BytesIO()
            sf.write(buf, sup.tone(440.0), 16000, format=fmt)
            page.evaluate("document.getElementById('status').textContent = ''")
            # as a drop of a file of no type hands it over (Playwright's file inputs guess one from the name)
            page.evaluate("([name, bytes]) => searchFile(new File([new Uint8Array(bytes)], name, {type: ''}))",
                          [name, list(buf.getvalue())])
            _wait(page, "document.getElementById('status').textContent.length > 0 && "
                        "document.getElementById('status').textContent !== 'Searching…'")
            status = page.inner_text("#status")
            assert "Unsupported" not in status and f"for {name}" in status, (name, status)
            assert page.eval_on_selector_all("#results .card", "els => els.length") > 0
