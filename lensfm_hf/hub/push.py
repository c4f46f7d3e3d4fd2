"""Upload a hub-ready model or dataset folder with huggingface_hub (`HF_ENDPOINT` selects another Hub).

`push_folder` checks folder and credentials first and turns the usual failures (no token, Hub unreachable or
silent, offline mode, token refused) into one-line errors that say how to fix them. Trainer state and pickles are
never uploaded (`upload_exclusions`): a checkpoint's `training_args.bin` holds the raw `hub_token`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import constants, create_repo, get_token, set_client_factory, upload_folder
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import _http

from .cards import retarget_card

logger = logging.getLogger(__name__)

# Local debris that must never reach a repo (fnmatch on relative paths: `*` spans folders);
# upload_folder already skips .git and .cache/huggingface.
IGNORE_PATTERNS = ["*.pyc", "*__pycache__*", "*.ipynb_checkpoints*"]

# Files left out of every upload and cache install, matched on the file name in any subfolder.
# The Trainer writes these next to the weights of a `checkpoint-N` folder; `training_args.bin` pickles
# the raw hub_token, and the optimizer/RNG/scheduler pickles are useless (and unsafe to unpickle) for
# a user. Pickles in general are refused because loading one runs code: weights go as safetensors.
TRAINER_STATE_FILES = (
    "training_args.bin", "trainer_state.json", "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt",
    "rng_state.pth", "rng_state_*.pth", "pytorch_model_fsdp*.bin",
)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")
DENIED_NAMES = TRAINER_STATE_FILES + PICKLE_PATTERNS

DEFAULT_TIMEOUT = 60.0
FIX_EXPORT = (
    "export the model with lensfm_hf.hub.save_for_hub(model, processor, out_dir) (a pretraining run's "
    "<run>/encoder folder is already hub-ready)"
)


def is_denied(name: str) -> bool:
    """True for a file name that is never uploaded or installed (trainer state or a pickle)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DENIED_NAMES)


def upload_exclusions(folder: str | Path) -> list[str]:
    """Relative paths (sorted, posix) of the files in `folder` that `push_folder`/`install_cache` leave out."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and is_denied(p.name))


def report_exclusions(folder: Path, excluded: list[str], action: str) -> None:
    if excluded:
        logger.warning(
            "%s: left out of the %s (trainer state and pickles are never published; training_args.bin holds "
            "the hub token): %s", folder, action, ", ".join(excluded),
        )


def retargeted_files(folder: str | Path, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
    """{relative path: bytes} of the files that differ in the copy of `folder` published as `repo_id`: its model
    card, when the card's code names another repo (a placeholder, or the id it was made for). Empty otherwise."""
    card = Path(folder) / "README.md"
    if repo_type != "model" or not card.is_file():
        return {}
    text = card.read_text(encoding="utf-8")
    new = retarget_card(text, repo_id)
    return {} if new == text else {"README.md": new.encode("utf-8")}


@contextlib.contextmanager
def _published_copy(folder: Path, replaced: Mapping[str, bytes]):
    """`folder` itself when nothing is `replaced`, else a temporary copy (hard links where the file system allows)
    with the `replaced` files written in: the folder is never edited."""
    if not replaced:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="lensfm-push-") as staging:
        copy = Path(staging) / folder.name

        def link_or_copy(source: str, target: str) -> None:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        shutil.copytree(folder, copy, copy_function=link_or_copy)
        for rel, data in replaced.items():
            (copy / rel).unlink(missing_ok=True)  # a hard link: writing through it would edit the folder
            (copy / rel).write_bytes(data)
        yield copy


def _auto_map_modules(auto_map: Mapping[str, Any] | None) -> set[str]:
    """Module names (`modeling_lens_vit`) that an `auto_map` refers to in the same repo."""
    modules = set()
    for value in (auto_map or {}).values():
        for ref in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(ref, str) and "--" not in ref and "." in ref:  # "repo--module.Class" lives elsewhere
                modules.add(ref.rsplit(".", 1)[0])
    return modules


def _read_json(path: Path, problems: list[str]) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        problems.append(f"{path.name} is unreadable ({type(err).__name__}: {err})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name} is not a JSON object")
        return None
    return data


def loading_problems(folder: str | Path) -> list[str]:
    """What keeps the model folder from loading where lensfm_hf is not installed (empty: it loads).

    It needs weights as safetensors, a config that transformers knows or whose `auto_map` code files are
    present (with the sibling modules they import), a processor config (and its `auto_map` code) and a card.
    """
    from transformers.dynamic_module_utils import get_relative_imports
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    folder = Path(folder)
    problems: list[str] = []
    modules: set[str] = set()
    config = _read_json(folder / "config.json", problems)
    if config is not None:
        auto_map = config.get("auto_map")
        model_type = config.get("model_type")
        if not auto_map and model_type not in CONFIG_MAPPING_NAMES:
            problems.append(
                f"config.json has model_type {model_type!r}, which transformers does not know, and no auto_map "
                "pointing at remote code"
            )
        modules |= _auto_map_modules(auto_map)
    if (folder / "preprocessor_config.json").is_file():
        processor = _read_json(folder / "preprocessor_config.json", problems)
        if processor is not None:
            modules |= _auto_map_modules(processor.get("auto_map"))
    else:
        problems.append("preprocessor_config.json is missing (AutoImageProcessor cannot load)")
    if not (folder / "README.md").is_file():
        problems.append("README.md (the model card) is missing")

    missing, seen = [], set()
    pending = sorted(modules)
    while pending:  # the remote-code files and the siblings they import relatively
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = folder / (module.replace(".", "/") + ".py")
        if not path.is_file():
            missing.append(path.name)
            continue
        pending.extend(get_relative_imports(path))
    if missing:
        problems.append(f"remote-code file(s) named by auto_map or imported by them are missing: {', '.join(sorted(missing))}")

    if not ((folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()):
        pickled = [name for name in ("pytorch_model.bin", "pytorch_model.bin.index.json") if (folder / name).is_file()]
        problems.append(
            "model.safetensors is missing"
            + (f" ({pickled[0]} is a pickle and is never uploaded; save with safe_serialization=True)" if pickled else "")
        )
    return problems


def _client_module():
    """The HTTP client library huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    return getattr(_http, "httpx2", None) or getattr(_http, "httpx")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of the HTTP client huggingface_hub uses."""
    return (ConnectionError, _client_module().TransportError)


def _timeout_errors() -> tuple[type[BaseException], ...]:
    return (_client_module().TimeoutException, TimeoutError)


@contextlib.contextmanager
def _client_timeout(seconds: float):
    """Give huggingface_hub's shared HTTP client a timeout for the duration of the block.

    Its default client factory sets `timeout=None`, so a Hub that accepts the connection and never answers
    hangs forever. Wrapping the current factory keeps any user customisation (proxies, certificates);
    the previous factory is restored afterwards (set_client_factory also drops the timed-out client).
    """
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)
    client_module = _client_module()

    def factory():
        client = previous()
        client.timeout = client_module.Timeout(seconds)
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def escaping_links(folder: str | Path) -> list[str]:
    """`link -> target` for every symlink under `folder` (file or folder) whose target lies outside it: uploading
    or installing the folder would publish the target (a token file, a home folder)."""
    root = Path(folder).resolve()
    found = []
    for parent, dirs, files in os.walk(root):  # followlinks=False: a linked folder is reported, not entered
        for name in sorted(dirs + files):
            path = Path(parent) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                found.append(f"{path.relative_to(root).as_posix()} -> {os.readlink(path)}")
    return sorted(found)


def check_hub_ready(folder: str | Path, repo_type: str = "model") -> Path:
    """Return `folder` as a Path if it can be uploaded as a `repo_type` repo; raise a clear error if not."""
    if repo_type not in ("model", "dataset"):
        raise ValueError(f"repo_type must be 'model' or 'dataset', got {repo_type!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder; pass the folder written by save_for_hub or the dataset builder."
        )
    links = escaping_links(folder)
    if links:
        raise ValueError(
            f"{folder} holds symlinks that point outside it, whose targets would be published: {'; '.join(links)}; "
            "remove them or replace them with the files themselves."
        )
    if repo_type == "model" and not (folder / "config.json").is_file():
        raise ValueError(
            f"{folder} has no config.json, so it is not a hub-ready model folder; write it with "
            "lensfm_hf.hub.save_for_hub(model, processor, out_dir) (or pass --repo-type dataset for a dataset)."
        )
    if repo_type == "model":
        problems = loading_problems(folder)
        if problems:
            raise ValueError(
                f"{folder} would not load where lensfm_hf is not installed: {'; '.join(problems)}. To fix it, "
                f"{FIX_EXPORT}."
            )
    if repo_type == "dataset" and not (folder / "README.md").is_file():
        raise ValueError(
            f"{folder} has no README.md, so it is not a hub-ready dataset folder: the card's `configs:` "
            "metadata is what lets load_dataset find the parquet files; build the folder with `lensfm simulate`."
        )
    return folder


def push_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str = "model",
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit, its card naming `repo_id`
    (`retargeted_files`, in a copy); return the repo URL.

    The token is `token`, else the one from `hf auth login` or `HF_TOKEN` (`huggingface_hub.get_token`).
    Trainer state and pickles are left out (`upload_exclusions`, logged). `timeout`: seconds any one
    connect, read or write may stall before the push fails (huggingface_hub's own client never times out).
    """
    if not timeout > 0:  # also refuses NaN
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    folder = check_hub_ready(folder, repo_type)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like ORG/NAME, got {repo_id!r}.")
    token = token or get_token()
    if not token:
        raise ValueError(
            "No Hugging Face token found: run `hf auth login` or set HF_TOKEN (a token with write access)."
        )
    endpoint = constants.ENDPOINT
    excluded = upload_exclusions(folder)
    report_exclusions(folder, excluded, "upload")
    # Both the bare name (top level) and */name (any subfolder): upload_folder matches relative paths.
    denied = [pattern for name in DENIED_NAMES for pattern in (name, f"*/{name}")]
    try:
        with _client_timeout(timeout), _published_copy(folder, retargeted_files(folder, repo_id, repo_type)) as source:
            url = create_repo(repo_id, repo_type=repo_type, token=token, private=private, exist_ok=True)
            upload_folder(
                repo_id=repo_id,
                folder_path=source,
                repo_type=repo_type,
                token=token,
                commit_message=commit_message or f"Upload {repo_type} with lensfm-hf",
                ignore_patterns=IGNORE_PATTERNS + denied,
            )
    except OfflineModeIsEnabled as err:
        raise RuntimeError("HF_HUB_OFFLINE=1 is set, so nothing can be pushed; unset it and retry.") from err
    except _timeout_errors() as err:
        raise RuntimeError(
            f"The Hub at {endpoint} did not answer within {timeout:g} s ({type(err).__name__}); check the network "
            "or HF_ENDPOINT, or allow more time with --timeout SECONDS (push_folder(timeout=...))."
        ) from err
    except _transport_errors() as err:
        raise RuntimeError(
            f"Cannot reach the Hub at {endpoint} ({type(err).__name__}: {err}); check the network, "
            "or HF_ENDPOINT if you point at a mirror or a local hub."
        ) from err
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status in (401, 403):
            raise RuntimeError(
                f"The Hub at {endpoint} refused the token for {repo_id} (HTTP {status}); run `hf auth login` "
                "with a token that has write access to that namespace, or set HF_TOKEN."
            ) from err
        raise RuntimeError(f"Upload of {folder} to {repo_id} failed: {err}") from err
    return str(url)


__all__ = [
    "check_hub_ready", "escaping_links", "is_denied", "loading_problems", "push_folder", "retargeted_files",
    "upload_exclusions",
]
