"""Offline use and integrity in the browser (web/src/sw.ts, engine/storage/{cache,download,store}.ts, ui/storage.ts).

Every test runs the real server behind a small recording proxy (`CuttingProxy`): it logs each
request the browser sends (path, Range) and can cut a response body after N bytes by closing the
socket, a real interrupted download. Each test has its own browser context, so its own service
worker, OPFS model cache and quota.

* After one online visit, with the server process stopped and the context offline, a reload still
  classifies and chats, with results equal to the online ones; the page stays crossOriginIsolated.
* A cached file altered on disk (OPFS) is detected by its sha256: online, exactly that file is
  fetched again; offline, the error names the file.
* A download cut three times fails with the bytes kept; the next load resumes with Range from
  there, the server sends the rest only, and the cached file is byte-exact.
* No request leaves the origin during a whole session (page, dedicated worker, service worker).
* The precache list (written into sw.js at build time) holds the app shell and dist/ort/*, not the
  WebLLM chunk; a new build whose precache fails leaves the old cache alone, and a complete one
  replaces it only when it activates.
* The Storage tab lists cached models with their sizes and deletes one or all (after the in-page
  confirmation); a quota too small
  gives StorageQuotaError; the MLC (WebLLM) files are cached verified and served by the service
  worker with the server gone.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from browser_support import ConsoleLog, data_url, fixed_images, png_bytes, screenshot
from server_support import live_server

CLIP = "tiny-random-clip"
LLM = "tiny-random-llama"
LABELS = ["a cat", "a dog", "a red car", "a mountain"]
CHAT = [{"role": "user", "content": "Hello, who are you?"}]
# Same files, same WASM build, same thread count: offline results must equal online ones exactly;
# the tolerance only absorbs float printing.
SCORE_TOL = 1e-7


# ---------------------------------------------------------------- the recording, cutting proxy


@dataclass
class Hit:
    method: str
    path: str  # without the query
    range: str | None


@dataclass
class CuttingProxy:
    """A loopback HTTP proxy in front of the live server; one request per connection (it asks for
    `Connection: close`), so every request is seen and a response can be cut by closing the socket."""

    upstream: int
    hits: list[Hit] = field(default_factory=list)
    # path -> body sizes after which to cut, one per coming response for that path
    cuts: dict[str, list[int]] = field(default_factory=dict)
    # path -> body bytes sent to the browser
    sent: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def model_hits(self) -> list[Hit]:
        return [h for h in self.hits if h.path.startswith("/models/")]

    def handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if not line.lower().startswith(("connection:", "keep-alive:"))]
        byte_range = next(
            (line.split(":", 1)[1].strip() for line in headers if line.lower().startswith("range:")), None
        )
        path = urlsplit(target).path
        with self.lock:
            self.hits.append(Hit(method, path, byte_range))
            cut = self.cuts[path].pop(0) if self.cuts.get(path) else None
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        try:
            upstream.sendall("\r\n".join([lines[0], *headers, "Connection: close", "", ""]).encode("latin-1") + rest)
            self.relay(upstream, client, path, cut)
        finally:
            upstream.close()

    def relay(self, upstream: socket.socket, client: socket.socket, path: str, cut: int | None) -> None:
        buffered = b""
        body_sent = None  # None until the response head has passed
        while True:
            chunk = upstream.recv(65536)
            if not chunk:
                return
            if body_sent is None:
                buffered += chunk
                if b"\r\n\r\n" not in buffered:
                    continue
                response_head, _, chunk = buffered.partition(b"\r\n\r\n")
                client.sendall(response_head + b"\r\n\r\n")
                body_sent = 0
            if cut is not None and body_sent + len(chunk) >= cut:
                client.sendall(chunk[: cut - body_sent])
                self.count(path, cut - body_sent)
                time.sleep(0.3)  # let the browser read what it got, then drop the connection
                client.shutdown(socket.SHUT_RDWR)
                return
            client.sendall(chunk)
            body_sent += len(chunk)
            self.count(path, len(chunk))

    def count(self, path: str, n: int) -> None:
        with self.lock:
            self.sent[path] = self.sent.get(path, 0) + n


@contextmanager
def proxy_in_front(upstream_port: int, port: int = 0) -> Iterator[tuple[CuttingProxy, int]]:
    proxy = CuttingProxy(upstream_port)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):  # the browser hung up
                proxy.handle(self.request)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- fixtures and page helpers


@pytest.fixture(scope="module")
def offline_root(shared_artifacts) -> Path:
    shared_artifacts.clip(CLIP)
    shared_artifacts.llm(LLM)
    return shared_artifacts.root


def manifest_entry(root: Path, model_id: str) -> dict:
    return next(m for m in json.loads((root / "manifest.json").read_text())["models"] if m["id"] == model_id)


def file_entry(root: Path, path: str) -> dict:
    model = manifest_entry(root, path.split("/")[0])
    return next(f for f in model["files"] if f["path"] == path)


def variant_files(root: Path, model_id: str, runtime: str = "wasm") -> list[str]:
    """The files the engine loads for the runtime's default variant: a vision model's two towers, not
    the combined model written for the peers' zero-shot pipelines."""
    model = manifest_entry(root, model_id)
    files = model["variants"][model["defaults"][runtime]]["files"]
    return [path for role, path in files.items() if not (role == "model" and "vision_model" in files)]


@dataclass
class Session:
    """A page in its own context, with every request it (and its workers) made."""

    context: object
    page: object
    log: ConsoleLog
    origin: str
    requests: list[str] = field(default_factory=list)
    sw_requests: list[str] = field(default_factory=list)

    def open(self, query: str = "?autoload=0") -> None:
        self.page.goto(f"{self.origin}/{query}")
        self.page.evaluate("window.lumenReady")

    def wait_for_service_worker(self) -> None:
        """Until the service worker finished its install (precache) and controls the page."""
        wait_until(self.page, "() => navigator.serviceWorker.controller !== null", 120_000)

    def opfs_file(self, sha: str, folder: str = "files") -> bytes | None:
        """A file of the OPFS model cache (lumen-models/<folder>/<sha>), or None when absent."""
        got = self.page.evaluate(
            """async ([folder, name]) => {
          let file;
          try {
            const root = await (await navigator.storage.getDirectory()).getDirectoryHandle("lumen-models");
            file = await (await (await root.getDirectoryHandle(folder)).getFileHandle(name)).getFile();
          } catch (err) {
            if (err.name === "NotFoundError") return null;
            throw err;
          }
          const url = await new Promise((resolve) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result);
            reader.readAsDataURL(file);
          });
          return url.slice(url.indexOf(",") + 1);
        }""",
            [folder, sha],
        )
        return None if got is None else base64.b64decode(got)


@pytest.fixture
def session(browser, request) -> Iterator[object]:
    """Yields a factory: session(origin) -> Session; each test drives its own server lifetime."""
    opened: list[Session] = []

    def make(origin: str) -> Session:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="allow")
        page = context.new_page()
        page.set_default_timeout(120_000)
        log = ConsoleLog()
        log.attach(page)
        s = Session(context, page, log, origin)
        page.on("request", lambda r: s.requests.append(r.url))
        context.on("request", lambda r: (s.sw_requests if r.service_worker else s.requests).append(r.url))
        opened.append(s)
        return s

    yield make
    for s in opened:
        try:
            screenshot(s.page, request.node.name)
        finally:
            s.context.close()


CLASSIFY_JS = """async ([id, images, labels]) => {
  await window.engine.load({ clip: id }, { runtime: "wasm" });
  return window.engine.classify({ images, labels });
}"""

CHAT_JS = """async ([id, messages]) => {
  await window.engine.loadChat(id, { runtime: "wasm" });
  const r = await window.engine.chat.completions.create({ messages, max_tokens: 12, temperature: 0 });
  return { text: r.choices[0].message.content, ids: r.choices[0].token_ids };
}"""


def wait_until(page, condition: str, timeout_ms: int = 60_000) -> None:
    """Polls `condition` (a JS arrow function's source) in the page; wait_for_function would eval()
    a string inside the page, which the app's CSP forbids."""
    page.evaluate(f"""async () => {{
      const condition = {condition};
      const deadline = performance.now() + {timeout_ms};
      while (!(await condition())) {{
        if (performance.now() > deadline) throw new Error("timed out waiting for: " + condition);
        await new Promise((r) => setTimeout(r, 100));
      }}
    }}""")


def images() -> list[str]:
    return [data_url(png_bytes(img)) for img in fixed_images(3)[:2]]


def assert_same_scores(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g_img, w_img in zip(got, want, strict=True):
        assert [s["label"] for s in g_img] == [s["label"] for s in w_img]
        for g, w in zip(g_img, w_img, strict=True):
            assert abs(g["score"] - w["score"]) <= SCORE_TOL, (g, w)


def load_error(page, id_: str) -> dict:
    return page.evaluate(
        """async (id) => {
      try { await window.engine.load({ clip: id }, { runtime: "wasm" }); return null; }
      catch (err) { return { name: err.name, message: err.message, fix: err.fix ?? "" }; }
    }""",
        id_,
    )


# ---------------------------------------------------------------- tests


def precache_list(dist: Path) -> dict:
    """The {version, files} object vite.config.ts wrote into sw.js."""
    literal = re.search(r'JSON\.parse\(("(?:[^"\\]|\\.)*")\)', (dist / "sw.js").read_text()).group(1)
    return json.loads(json.loads(literal))


def test_the_precache_list_holds_the_app_and_runtime_but_not_the_webllm_chunk(web_dist):
    build = precache_list(web_dist)
    built = {p.relative_to(web_dist).as_posix() for p in web_dist.rglob("*") if p.is_file()}
    listed = set(build["files"])
    assert listed <= built
    assert {"index.html", *(f for f in built if f.startswith("ort/"))} <= listed
    left_out = {f for f in built - listed if not f.endswith(".map") and f != "sw.js"}
    # Only the WebLLM chunk, by its content: the library's engine class, about 6 MB.
    assert len(left_out) == 1, left_out
    chunk = web_dist / left_out.pop()
    assert chunk.stat().st_size > 4_000_000 and b"MLCEngine" in chunk.read_bytes()
    # The version is a hash of the listed files: it changes when any of them changes.
    digest = hashlib.sha256()
    for f in sorted(listed):
        digest.update(f"{f}\0{hashlib.sha256((web_dist / f).read_bytes()).hexdigest()}\n".encode())
    assert build["version"] == digest.hexdigest()[:16]


@pytest.mark.browser
def test_after_one_visit_classify_and_chat_work_offline_with_the_same_results(offline_root, web_dist, session):
    with ExitStack() as online:
        _host, port = online.enter_context(live_server(offline_root, web_dist))
        proxy, proxy_port = online.enter_context(proxy_in_front(port))
        s = session(f"http://127.0.0.1:{proxy_port}")
        s.open()
        s.wait_for_service_worker()
        scores_online = s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])
        chat_online = s.page.evaluate(CHAT_JS, [LLM, CHAT])
        online_models = [h.path for h in proxy.model_hits()]
    # The server process is gone (live_server terminated it) and the network is off.
    s.context.set_offline(True)
    s.page.reload()
    s.page.evaluate("window.lumenReady")
    assert s.page.evaluate("crossOriginIsolated"), "COOP/COEP lost: the cached page is not cross-origin isolated"
    assert s.page.evaluate("navigator.serviceWorker.controller !== null")
    # The model list comes from the cached manifest: the select offers the models again.
    assert CLIP in s.page.locator("#model-select").inner_text()
    scores_offline = s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])
    chat_offline = s.page.evaluate(CHAT_JS, [LLM, CHAT])
    assert_same_scores(scores_offline, scores_online)
    assert chat_offline == chat_online and len(chat_online["ids"]) > 0

    # Online, each model file was downloaded exactly once (no duplicates, nothing after the load).
    assert len(online_models) == len(set(online_models))
    wanted = {*variant_files(offline_root, CLIP), *variant_files(offline_root, LLM)}
    assert {f"/models/{p}" for p in wanted} <= set(online_models)
    # Zero requests to any other origin: page, engine worker, service worker (its precache included).
    assert any("/models/" in u for u in s.requests), "the engine worker's requests were not recorded"
    assert s.sw_requests, "the service worker's own requests were not recorded"
    foreign = [
        u
        for u in s.requests + s.sw_requests
        if not u.startswith(s.origin + "/") and not u.startswith(("data:", "blob:"))
    ]
    assert foreign == []
    s.log.errors = [e for e in s.log.errors if "ERR_INTERNET_DISCONNECTED" not in e]
    s.log.assert_clean()


CORRUPT_JS = """async (name) => {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle("lumen-models");
  const handle = await (await root.getDirectoryHandle("files")).getFileHandle(name);
  const bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
  bytes[bytes.length >> 1] ^= 0xff;  // one flipped byte in the middle, same size
  const writable = await handle.createWritable();
  await writable.write(bytes);
  await writable.close();
}"""


@pytest.mark.browser
def test_a_corrupted_cached_file_is_refetched_online_and_named_offline(offline_root, web_dist, session):
    vision_path = next(p for p in variant_files(offline_root, CLIP) if "vision_model" in p)
    vision = file_entry(offline_root, vision_path)
    with ExitStack() as online:
        _host, port = online.enter_context(live_server(offline_root, web_dist))
        proxy, proxy_port = online.enter_context(proxy_in_front(port))
        s = session(f"http://127.0.0.1:{proxy_port}")
        s.open()
        s.wait_for_service_worker()
        want = s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])

        s.page.evaluate(CORRUPT_JS, vision["sha256"])
        assert hashlib.sha256(s.opfs_file(vision["sha256"])).hexdigest() != vision["sha256"]
        s.page.reload()
        s.page.evaluate("window.lumenReady")
        proxy.hits.clear()
        got = s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])
        # Detected, evicted, fetched again: exactly one request, for that file, from byte 0.
        assert [(h.path, h.range) for h in proxy.model_hits()] == [(f"/models/{vision_path}", None)]
        assert_same_scores(got, want)
        repaired = s.opfs_file(vision["sha256"])
        assert repaired == (offline_root / vision_path).read_bytes()

        s.page.evaluate(CORRUPT_JS, vision["sha256"])
    s.context.set_offline(True)
    s.page.reload()
    s.page.evaluate("window.lumenReady")
    err = load_error(s.page, CLIP)
    assert err is not None and err["name"] == "CorruptFileError", err
    assert vision_path in err["message"] and "reconnect" in err["fix"]
    # The page shows it too: the Classify UI loads the model and its alert names the file.
    s.page.evaluate("document.getElementById('alerts').replaceChildren()")
    s.page.select_option("#model-select", CLIP)  # fires change: the page loads the model
    alert = s.page.locator('#alerts .alert[data-error="CorruptFileError"], #alerts .alert[data-error="DownloadError"]')
    alert.first.wait_for()
    assert vision_path in alert.first.inner_text()


@pytest.mark.browser
def test_a_cut_download_resumes_with_range_and_ends_byte_exact(offline_root, web_dist, session):
    text_path = next(p for p in variant_files(offline_root, CLIP) if "text_model" in p)
    text = file_entry(offline_root, text_path)
    url_path = f"/models/{text_path}"
    cut = 300_000
    assert text["bytes"] > 4 * cut
    with live_server(offline_root, web_dist) as (_host, port), proxy_in_front(port) as (proxy, proxy_port):
        s = session(f"http://127.0.0.1:{proxy_port}")
        s.open()
        # Three cuts in a row exhaust the retries of one load: it fails, and the bytes stay.
        proxy.cuts[url_path] = [cut, cut, cut]
        err = load_error(s.page, CLIP)
        assert err is not None and err["name"] == "DownloadError" and text_path in err["message"], err
        ranges = [h.range for h in proxy.model_hits() if h.path == url_path]
        assert ranges == [None, f"bytes={cut}-", f"bytes={2 * cut}-"]
        partial = s.opfs_file(text["sha256"], "partial")
        assert partial is not None and len(partial) == 3 * cut

        # A new page load (as after closing the tab) resumes from the kept bytes, not from zero.
        s.page.reload()
        s.page.evaluate("window.lumenReady")
        proxy.hits.clear()
        s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])
        assert [h.range for h in proxy.model_hits() if h.path == url_path] == [f"bytes={3 * cut}-"]
        # The server sent the file's bytes once in total; the cache holds them byte-exact.
        assert proxy.sent[url_path] == text["bytes"]
        cached = s.opfs_file(text["sha256"])
        assert cached is not None and hashlib.sha256(cached).hexdigest() == text["sha256"]
        assert s.opfs_file(text["sha256"], "partial") is None


def storage_rows(page) -> dict[str, str]:
    page.click("#tab-storage")
    wait_until(page, "() => document.querySelector('#storage-models tr') !== null")
    page.wait_for_timeout(300)
    rows = page.locator("#storage-models tr[data-model]")
    return {rows.nth(i).get_attribute("data-model"): rows.nth(i).inner_text() for i in range(rows.count())}


def models_with_cached_files(s, root: Path) -> set[str]:
    manifest = json.loads((root / "manifest.json").read_text())
    return {m["id"] for m in manifest["models"] if any(s.opfs_file(f["sha256"]) is not None for f in m["files"])}


@pytest.mark.browser
def test_storage_tab_lists_sizes_deletes_models_and_quota_is_checked(offline_root, web_dist, session):
    with live_server(offline_root, web_dist) as (_host, port), proxy_in_front(port) as (_proxy, proxy_port):
        s = session(f"http://127.0.0.1:{proxy_port}")
        s.open()
        s.page.evaluate(CLASSIFY_JS, [CLIP, images(), LABELS])
        s.page.evaluate(CHAT_JS, [LLM, CHAT])
        # WebLLM's files (MLC build) through the same verified cache, then served by the service worker.
        mlc = manifest_entry(offline_root, LLM)["llm"]["mlc"][0]["path"]
        mlc_files = [f for f in manifest_entry(offline_root, LLM)["files"] if f["path"].startswith(mlc + "/")]
        s.page.evaluate(
            "([id, paths]) => window.engine.storage.cacheFiles(id, paths)", [LLM, [f["path"] for f in mlc_files]]
        )
        s.wait_for_service_worker()

        report = s.page.evaluate("window.engine.storage.report()")
        by_id = {m["id"]: m for m in report["models"]}
        for model_id in (CLIP, LLM):
            entry = manifest_entry(offline_root, model_id)
            cached = [f for f in entry["files"] if s.opfs_file(f["sha256"]) is not None]
            # Each content once: the MLC build carries copies of the tokenizer files (same sha256).
            assert by_id[model_id]["bytes"] == sum({f["sha256"]: f["bytes"] for f in cached}.values())
        rows = storage_rows(s.page)
        # Files are stored once per sha256, so a model that shares files with these (the tiny LLM's
        # tokenizer is SmolLM2's) is listed too, with what of it is cached.
        assert set(rows) == models_with_cached_files(s, offline_root) and {CLIP, LLM} <= set(rows)
        assert f"{by_id[CLIP]['bytes'] / 1e6:.2f} MB" in rows[CLIP]

        shard = next(f for f in mlc_files if f["path"].endswith(".bin"))
    # Server gone: WebLLM's URL (no ?sha256=) is answered from the verified cache by the service worker.
    s.context.set_offline(True)
    got = s.page.evaluate(
        """async (path) => {
      const r = await fetch('/models/' + path);
      const blob = await r.blob();
      const url = await new Promise((resolve) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.readAsDataURL(blob);
      });
      return { status: r.status, base64: url.slice(url.indexOf(",") + 1) };
    }""",
        shard["path"],
    )
    assert got["status"] == 200
    assert base64.b64decode(got["base64"]) == (offline_root / shard["path"]).read_bytes()

    # Delete one model: its row and files go, the other stays; then delete all.
    s.page.click(f'#storage-models tr[data-model="{CLIP}"] button')
    s.page.click("#confirm-ok")  # every delete asks first (tests/test_browser_storage.py: Cancel keeps it)
    wait_until(s.page, f"""() => !document.querySelector('#storage-models tr[data-model="{CLIP}"]')""")
    after = set(storage_rows(s.page))
    assert CLIP not in after and LLM in after and after == models_with_cached_files(s, offline_root)
    clip_files = manifest_entry(offline_root, CLIP)["files"]
    assert all(s.opfs_file(f["sha256"]) is None for f in clip_files)
    s.page.click("#storage-clear")
    s.page.click("#confirm-ok")
    wait_until(s.page, "() => !document.querySelector('#storage-models tr[data-model]')")
    assert s.page.evaluate("window.engine.storage.report()")["models"] == []
    s.context.set_offline(False)

    # A quota too small for the model: a named error that says what does not fit.
    with live_server(offline_root, web_dist) as (_host, port):
        s2 = session(f"http://127.0.0.1:{port}")
        s2.open()
        s2.wait_for_service_worker()  # its precache counts against the quota too
        cdp = s2.context.new_cdp_session(s2.page)
        usage = s2.page.evaluate("navigator.storage.estimate().then((e) => e.usage)")
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": s2.origin, "quotaSize": usage + 100_000})
        err = load_error(s2.page, CLIP)
        assert err is not None and err["name"] == "StorageQuotaError", err
        assert CLIP in err["message"] and "do not fit" in err["message"] and "Storage tab" in err["fix"]
        # Nothing complete was kept; bytes a write got in before the quota stopped it are an unfinished download.
        left = s2.page.evaluate("window.engine.storage.report()")["models"]
        assert all(m["bytes"] == 0 and m["cachedFiles"] == 0 and m["partialFiles"] > 0 for m in left), left


def rewrite_precache(original: Path, dist: Path, version: str, extra: list[str]) -> None:
    """Makes dist/sw.js a "new build" of `original`: another version, `extra` files added to its precache list."""
    code = (original / "sw.js").read_text()
    old = re.search(r'JSON\.parse\(("(?:[^"\\]|\\.)*")\)', code).group(1)
    build = json.loads(json.loads(old))
    build = {"version": version, "files": [*build["files"], *extra]}
    (dist / "sw.js").write_text(code.replace(old, json.dumps(json.dumps(build))))


CACHES_JS = "async () => (await caches.keys()).filter((k) => k.startsWith('lumen-shell-')).sort()"
UPDATE_JS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  await registration.update();
  const worker = registration.installing ?? registration.waiting;
  if (!worker) return "none";
  // Settles when the install ends: "installed" (waiting) or "redundant" (the install failed).
  while (worker.state === "installing") await new Promise((r) => worker.addEventListener("statechange", r, { once: true }));
  return worker.state;
}"""


@pytest.mark.browser
def test_an_update_replaces_the_old_cache_only_after_the_new_one_is_complete(offline_root, web_dist, session, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(web_dist, dist)
    first = precache_list(dist)["version"]
    with live_server(offline_root, dist) as (host, port):
        s = session(f"http://{host}:{port}")
        s.open()
        s.wait_for_service_worker()
        assert s.page.evaluate(CACHES_JS) == [f"lumen-shell-{first}"]

        # A new build whose precache cannot complete (a file 404s): the install fails, nothing changes.
        rewrite_precache(web_dist, dist, "0000000000000002", ["assets/missing-file.js"])
        assert s.page.evaluate(UPDATE_JS) == "redundant"
        assert s.page.evaluate(CACHES_JS) == [f"lumen-shell-{first}"]

        # A complete new build: installed next to the old cache, which stays while this page uses it.
        (dist / "assets" / "new-file.js").write_text("export const v = 2;")
        rewrite_precache(web_dist, dist, "0000000000000003", ["assets/new-file.js"])
        assert s.page.evaluate(UPDATE_JS) == "installed"
        assert s.page.evaluate(CACHES_JS) == sorted([f"lumen-shell-{first}", "lumen-shell-0000000000000003"])

        # Once no page uses the old version, the new one activates and the old cache goes.
        url = s.page.url
        s.page.close()
        s.page = s.context.new_page()
        s.page.goto(url)
        wait_until(s.page, "async () => (await caches.keys()).filter((k) => k.startsWith('lumen-shell-')).length === 1")
        assert s.page.evaluate(CACHES_JS) == ["lumen-shell-0000000000000003"]
        assert s.page.evaluate("fetch('/assets/new-file.js').then((r) => r.text())") == "export const v = 2;"
