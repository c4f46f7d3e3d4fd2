"""A local, in-memory stand-in for the Hugging Face Hub, for push/pull tests without internet.

Implements the endpoints huggingface_hub, transformers and datasets use to create repos, upload
(preupload, LFS "basic" batch + PUT, NDJSON commit), list (tree, paths-info) and download (resolve,
with Range). Clients need `client_env(url, hf_home)` in their environment before importing HF libraries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# What the real Hub stores as LFS regardless of size (its default .gitattributes patterns, abridged).
LFS_SUFFIXES = (".safetensors", ".parquet", ".npy", ".npz", ".bin", ".pt", ".arrow", ".h5")
LFS_MIN_SIZE = 10 * 1024 * 1024

API_RE = re.compile(r"^/api/(models|datasets)/(.+?)(?:/(revision|tree|preupload|commit|paths-info)(?:/(.*))?)?$")
LFS_BATCH_RE = re.compile(r"^/(datasets/)?(.+)\.git/info/lfs/objects/batch$")
RESOLVE_RE = re.compile(r"^/(datasets/)?(.+?)/resolve/([^/]+)/(.+)$")


def client_env(endpoint: str, hf_home: str, token: str | None = "hf_fake_token") -> dict[str, str]:
    """Environment variables that point HF clients at `endpoint`; set them before any HF import."""
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "10"}
    if token is not None:
        env["HF_TOKEN"] = token
    return env


# Prepended to client code that must run as a user without our package: a meta-path finder that
# refuses `lensfm_hf` even when it is pip-installed (editable or not), and nothing else, so that
# transformers' dynamic `transformers_modules.*` still import.
BLOCK_LENSFM = """
import sys
class _RefuseLensfm:
    def find_spec(self, name, path=None, target=None):
        if name == "lensfm_hf" or name.startswith("lensfm_hf."):
            raise ModuleNotFoundError(f"{name} is blocked in this test process", name=name)
sys.meta_path.insert(0, _RefuseLensfm())
try:
    import lensfm_hf
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("lensfm_hf is importable although it must not be")
"""


def run_client(code: str, env: dict, cwd, *, block_lensfm: bool = False, timeout: float = 300):
    """Run `code` in a fresh `python -c` with exactly `env`; return the CompletedProcess (text)."""
    code = textwrap.dedent(code)
    if block_lensfm:
        code = BLOCK_LENSFM + code
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout)


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, size: int) -> bool:
    """The upload mode this hub asks for (clients send empty files as regular; so do we)."""
    return size > 0 and (path.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE)


class FakeHub:
    """In-memory repos served over HTTP on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(self, write_token: str | None = None):
        self.write_token = write_token  # when set, writes with another token get 401 like the real Hub
        # (repo_type, repo_id) -> {"commits": {sha: {path: bytes}}, "main": sha}; one branch, main
        self.repos: dict[tuple[str, str], dict] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.requests: list[str] = []  # "METHOD path" log, handy when a client calls something we lack
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """Files at the head of `main` of a repo."""
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo["commits"][repo["main"]])


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args):  # keep pytest output clean
        pass

    # -- plumbing ---------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str, message: str):
        self._json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

    def _snapshot(self, repo_type: str, repo_id: str, rev: str):
        """(commit sha, files) for a revision, or None after sending the 404."""
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        rev = unquote(rev or "main")
        sha = repo["main"] if rev == "main" else rev if rev in repo["commits"] else None
        if sha is None:
            self._error(404, "RevisionNotFound", f"Revision {rev} not found")
            return None
        return sha, repo["commits"][sha]

    def _entry(self, path: str, files: dict) -> dict:
        if path in files:
            data = files[path]
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}
            if is_lfs(path, len(data)):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            return entry
        return {"type": "directory", "path": path, "size": 0, "oid": git_blob_sha(path.encode())}

    # -- verbs --------------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        self.hub.requests.append(f"{self.command} {url.path}")
        path = unquote(url.path)
        if path == "/api/whoami-v2":
            token = {"displayName": "fake", "role": "write"}
            return self._json({"type": "user", "name": "tester", "fullname": "Test User", "orgs": [],
                               "auth": {"type": "access_token", "accessToken": token}})
        if m := API_RE.match(url.path):
            kind, repo_id, action, rest = m.group(1)[:-1], unquote(m.group(2)), m.group(3), m.group(4) or ""
            if action in (None, "revision"):
                with self.hub.lock:
                    snap = self._snapshot(kind, repo_id, rest or "main")
                if snap is None:
                    return
                sha, files = snap
                return self._json({"id": repo_id, "sha": sha, "private": False, "disabled": False, "gated": False,
                                   "siblings": [{"rfilename": p} for p in sorted(files)], "tags": []})
            if action == "tree":
                rev, _, sub = rest.partition("/")
                return self._tree(kind, repo_id, rev, unquote(sub).strip("/"), parse_qs(url.query))
        if m := RESOLVE_RE.match(url.path):
            kind = "dataset" if m.group(1) else "model"
            return self._resolve(kind, unquote(m.group(2)), m.group(3), unquote(m.group(4)))
        self._error(404, "NotFound", f"fake hub: no route for GET {url.path}")

    def _tree(self, kind, repo_id, rev, sub, query):
        with self.hub.lock:
            snap = self._snapshot(kind, repo_id, rev)
            if snap is None:
                return
            files = snap[1]
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            prefix = f"{sub}/" if sub else ""
            if sub and not any(p.startswith(prefix) for p in files):
                # datasets' HfFileSystem.glob relies on exactly this answer for a missing folder
                return self._error(404, "EntryNotFound", f"{sub} does not exist on main")
            paths = set()
            for p in files:
                if not p.startswith(prefix):
                    continue
                parts = p[len(prefix):].split("/")
                for depth in range(1, len(parts) + 1 if recursive else 2):
                    paths.add(prefix + "/".join(parts[:depth]))
            self._json([self._entry(p, files) for p in sorted(paths)])

    def _resolve(self, kind, repo_id, rev, filename):
        with self.hub.lock:
            snap = self._snapshot(kind, repo_id, rev)
            if snap is None:
                return
            sha, files = snap
            if filename not in files:
                return self._error(404, "EntryNotFound", f"{filename} does not exist at {rev}")
            data = files[filename]
        lfs = is_lfs(filename, len(data))
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha(data)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        status, rng = 200, self.headers.get("Range")
        if rng and (m := re.match(r"bytes=(\d*)-(\d*)", rng)):
            start, end = m.groups()
            if start == "":
                start, end = max(0, len(data) - int(end)), len(data) - 1
            else:
                start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers, ctype="application/octet-stream")

    def do_PUT(self):
        path = urlsplit(self.path).path
        self.hub.requests.append(f"PUT {path}")
        body = self._body()
        oid = path.rsplit("/", 1)[-1]
        if not path.startswith("/__lfs/") or hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, "BadRequest", "LFS upload does not match its sha256")
        with self.hub.lock:
            self.hub.lfs_store[oid] = body
        self._send(200)

    def do_POST(self):
        url = urlsplit(self.path)
        self.hub.requests.append(f"POST {url.path}")
        body = self._body()
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.hub.write_token is not None and token != self.hub.write_token:
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        if url.path == "/api/validate-yaml":
            return self._json({"errors": [], "warnings": []})
        if url.path == "/api/repos/create":
            req = json.loads(body)
            kind = req.get("type") or "model"
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else f"tester/{req['name']}"
            with self.hub.lock:
                # like the real Hub, a new repo starts with one (here empty) commit on main
                initial = hashlib.sha1(f"{kind}/{repo_id}".encode()).hexdigest()
                self.hub.repos.setdefault((kind, repo_id), {"commits": {initial: {}}, "main": initial})
            prefix = "" if kind == "model" else f"{kind}s/"
            return self._json({"url": f"{self.hub.url}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})
        if LFS_BATCH_RE.match(url.path):
            objects = []
            for obj in json.loads(body)["objects"]:
                item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in self.hub.lfs_store:
                    item["actions"] = {"upload": {"href": f"{self.hub.url}/__lfs/{obj['oid']}"}}
                objects.append(item)
            return self._json({"transfer": "basic", "objects": objects})
        if m := API_RE.match(url.path):
            kind, repo_id, action, rev = m.group(1)[:-1], unquote(m.group(2)), m.group(3), m.group(4) or "main"
            if (kind, repo_id) not in self.hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._json({"files": [
                    {"path": f["path"], "shouldIgnore": False,
                     "uploadMode": "lfs" if is_lfs(f["path"], f["size"]) else "regular"}
                    for f in files]})
            if action == "commit":
                return self._commit(kind, repo_id, body)
            if action == "paths-info":
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    paths = json.loads(body)["paths"]
                else:
                    paths = parse_qs(body.decode()).get("paths", [])
                with self.hub.lock:
                    snap = self._snapshot(kind, repo_id, rev)
                    if snap is None:
                        return
                    files = snap[1]
                    found = [p.strip("/") for p in paths
                             if p.strip("/") in files or any(f.startswith(p.strip("/") + "/") for f in files)]
                    return self._json([self._entry(p, files) for p in found])
        self._error(404, "NotFound", f"fake hub: no route for POST {url.path}")

    def _commit(self, kind, repo_id, body):
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self.hub.lock:
            repo = self.hub.repos[(kind, repo_id)]
            files = dict(repo["commits"][repo["main"]])
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "lfsFile":
                    if value["oid"] not in self.hub.lfs_store:
                        return self._error(400, "BadRequest", f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = self.hub.lfs_store[value["oid"]]
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(folder)}
            sha = hashlib.sha1(repo["main"].encode() + body).hexdigest()
            repo["commits"][sha], repo["main"] = files, sha
        prefix = "" if kind == "model" else f"{kind}s/"
        self._json({"commitUrl": f"{self.hub.url}/{prefix}{repo_id}/commit/{sha}", "commitOid": sha,
                    "pullRequestUrl": None})


if __name__ == "__main__":  # run by hand: python tests/hub/fake_hub.py
    import time

    with FakeHub() as hub:
        print(f"fake hub at {hub.url}; export HF_ENDPOINT={hub.url} HF_HUB_DISABLE_XET=1 HF_TOKEN=x")
        while True:
            time.sleep(3600)
