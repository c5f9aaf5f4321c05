"""The Chat tab as people expect it (ui/chat.ts, chat_message.ts, markdown.ts, conversation_*.ts):
Markdown replies rendered as sanitized elements, conversations saved in IndexedDB and restored after
a reload and offline (rename, delete), Regenerate, Copy. The tiny-random LLM writes random words, so
the Markdown test stores a reply with known Markdown and checks what the page renders from it.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from browser_support import TINY_LLM, load_tiny_chat, open_app, screenshot, send_chat

pytestmark = pytest.mark.browser

MARKDOWN_REPLY = """# Plan

- first step
- second step

```python
print("hello")
```

<img src="x" onerror="window.pwned = 1"><script>window.pwned = 2</script>[bad link](javascript:window.pwned=3)"""

SEED_JS = """(conversation) => new Promise((resolve, reject) => {
  const open = indexedDB.open("lumen-chat", 1);
  open.onerror = () => reject(open.error);
  // The same schema as ui/conversation_store.ts, in case the page has not opened the database yet.
  open.onupgradeneeded = () => open.result.createObjectStore("conversations", { keyPath: "id" });
  open.onsuccess = () => {
    const tx = open.result.transaction("conversations", "readwrite");
    tx.objectStore("conversations").put(conversation);
    tx.oncomplete = () => { open.result.close(); resolve(); };
    tx.onerror = () => reject(tx.error);
  };
})"""

STORED_JS = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("lumen-chat", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction("conversations").objectStore("conversations").getAll();
    get.onsuccess = () => { open.result.close(); resolve(get.result); };
  };
})"""


def wait_for_service_worker(page, timeout_s: float = 120) -> None:
    """Until the service worker finished its install (precache) and controls the page (it claims it)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate("navigator.serviceWorker.controller !== null"):
        assert time.monotonic() < deadline, "the service worker never took control"
        page.wait_for_timeout(250)


def test_markdown_reply_renders_as_sanitized_elements_and_survives_reload_and_offline(tiny_app_url, page_and_log):
    page, log = page_and_log
    open_app(page, tiny_app_url, "autoload=0")
    wait_for_service_worker(page)
    seeded = {
        "id": "seeded-1",
        "title": "Markdown demo",
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": "Make a plan"}, {"role": "assistant", "content": MARKDOWN_REPLY}],
        "updated": 1_700_000_000_000,
    }
    page.evaluate(SEED_JS, seeded)

    for offline in (False, True):
        page.context.set_offline(offline)
        page.reload()
        page.evaluate("window.lumenReady")
        page.click("#tab-chat")
        expect(page.locator("#chat-list li")).to_have_count(1)
        assert page.locator("#chat-list .chat-list-open").inner_text() == "Markdown demo"
        reply = page.locator('#chat-log li[data-role="assistant"] .chat-text')
        expect(reply.locator("h1")).to_have_text("Plan")
        expect(reply.locator("ul > li")).to_have_text(["first step", "second step"])
        expect(reply.locator("pre > code")).to_contain_text('print("hello")')
        # Sanitized: no script, no image with a handler, no javascript: link, nothing ran.
        assert reply.locator("script, img").count() == 0
        assert all(not (a.get_attribute("href") or "").startswith("javascript:") for a in reply.locator("a").all())
        assert page.evaluate("window.pwned") is None
        assert page.locator('#chat-log li[data-role="user"]').inner_text() == "Make a plan"
        assert page.input_value("#chat-system") == "Answer briefly."
    screenshot(page, "chat-markdown-offline")

    # Rename and delete (each asks in a dialog).
    page.once("dialog", lambda d: d.accept("Renamed plan"))
    page.click('#chat-list [data-action="rename"]')
    expect(page.locator("#chat-list .chat-list-open")).to_have_text(["Renamed plan"])
    assert [c["title"] for c in page.evaluate(STORED_JS)] == ["Renamed plan"]
    page.once("dialog", lambda d: d.dismiss())
    page.click('#chat-list [data-action="delete"]')
    expect(page.locator("#chat-list li")).to_have_count(1)  # dismissed: still there
    page.once("dialog", lambda d: d.accept())
    page.click('#chat-list [data-action="delete"]')
    expect(page.locator("#chat-list li")).to_have_count(0)
    assert page.locator("#chat-log li").count() == 0
    assert page.evaluate(STORED_JS) == []
    # Expected console lines: Chromium reports the hostile onerror= as a CSP violation while DOMPurify
    # parses it in its inert DOMParser document (nothing runs: window.pwned stayed unset above), and
    # offline, requests that miss the cache fail.
    unexpected = [e for e in log.errors if "inline event handler" not in e and "ERR_INTERNET_DISCONNECTED" not in e]
    assert not unexpected, unexpected


def test_regenerate_replaces_the_reply_and_copy_copies_it(tiny_app_url, page_and_log):
    page, log = page_and_log
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    load_tiny_chat(page, tiny_app_url)
    page.fill("#chat-max-tokens", "8")
    page.click(".chat-system-box summary")
    page.fill("#chat-system", "You are terse.")
    page.dispatch_event("#chat-system", "change")
    send_chat(page, "Say something.")
    page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')
    first = page.evaluate(STORED_JS)[0]["messages"][1]["content"]

    page.click('#chat-log li[data-role="assistant"] [data-action="regenerate"]')
    page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')
    expect(page.locator("#panel-chat")).to_have_attribute("data-state", "ready")
    # The old reply is gone from the page, the store and the request that wrote the new one.
    assert [li.get_attribute("data-role") for li in page.locator("#chat-log li").all()] == ["user", "assistant"]
    sent = page.evaluate("window.sentMessages")
    assert sent[-1] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something."}]
    stored = page.evaluate(STORED_JS)
    assert len(stored) == 1 and [m["role"] for m in stored[0]["messages"]] == ["user", "assistant"]
    second = stored[0]["messages"][1]["content"]
    assert second, "the regenerated reply is empty"
    print(f"first reply {first!r}, regenerated {second!r}")

    page.click('#chat-log li[data-role="assistant"] [data-action="copy"]')
    expect(page.locator('#chat-log [data-action="copy"]')).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == second

    # The conversation, as answered, comes back after a reload.
    page.reload()
    page.evaluate("window.lumenReady")
    expect(page.locator("#chat-log li")).to_have_count(2)
    assert page.input_value("#chat-system") == "You are terse."
    log.assert_clean()


def test_loading_says_what_it_prepares_after_the_download(tiny_app_url, page_and_log):
    page, log = page_and_log
    open_app(page, tiny_app_url, f"autoload=0&runtime=wasm&chat={TINY_LLM}")
    page.evaluate("""() => {
      window.loadTexts = [];
      const text = document.getElementById("load-text");
      new MutationObserver(() => window.loadTexts.push(text.textContent)).observe(text, { childList: true });
    }""")
    page.click("#tab-chat")
    page.wait_for_selector('#panel-chat[data-state="ready"]')
    texts = page.evaluate("window.loadTexts")
    preparing = [t for t in texts if t.startswith("Preparing the model")]
    # WASM expands the 4-bit weights first, then creates the session: both steps are shown, in order.
    assert preparing == [
        "Preparing the model: expanding weights (step 1 of 2)…",
        "Preparing the model: creating the session (step 2 of 2)…",
    ], texts
    assert texts.index(preparing[0]) > 0  # after the download lines
    log.assert_clean()
