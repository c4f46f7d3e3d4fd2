"""Upload a hub-ready model or dataset folder with huggingface_hub.

`push_folder` checks the folder and the credentials before talking to the Hub, and turns the
usual failures (no token, Hub unreachable, offline mode, token refused) into one-line errors that
say how to fix them. `HF_ENDPOINT` selects another Hub (a mirror or a local test server).
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants, create_repo, get_token, upload_folder
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

# Local debris that must never reach a repo (fnmatch on relative paths: `*` spans folders);
# upload_folder already skips .git and .cache/huggingface.
IGNORE_PATTERNS = ["*.pyc", "*__pycache__*", "*.ipynb_checkpoints*"]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    errors: list[type[BaseException]] = [ConnectionError]
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    return tuple(errors)


def check_hub_ready(folder: str | Path, repo_type: str = "model") -> Path:
    """Return `folder` as a Path if it can be uploaded as a `repo_type` repo; raise a clear error if not."""
    if repo_type not in ("model", "dataset"):
        raise ValueError(f"repo_type must be 'model' or 'dataset', got {repo_type!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder; pass the folder written by save_for_hub or the dataset builder."
        )
    if repo_type == "model" and not (folder / "config.json").is_file():
        raise ValueError(
            f"{folder} has no config.json, so it is not a hub-ready model folder; write it with "
            "lensfm_hf.hub.save_for_hub(model, processor, out_dir) (or pass --repo-type dataset for a dataset)."
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
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit; return the repo URL.

    The token is `token`, else the one from `hf auth login` or `HF_TOKEN` (`huggingface_hub.get_token`).
    """
    folder = check_hub_ready(folder, repo_type)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like ORG/NAME, got {repo_id!r}.")
    token = token or get_token()
    if not token:
        raise ValueError(
            "No Hugging Face token found: run `hf auth login` or set HF_TOKEN (a token with write access)."
        )
    endpoint = constants.ENDPOINT
    try:
        url = create_repo(repo_id, repo_type=repo_type, token=token, private=private, exist_ok=True)
        upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type=repo_type,
            token=token,
            commit_message=commit_message or f"Upload {repo_type} with lensfm-hf",
            ignore_patterns=IGNORE_PATTERNS,
        )
    except OfflineModeIsEnabled as err:
        raise RuntimeError("HF_HUB_OFFLINE=1 is set, so nothing can be pushed; unset it and retry.") from err
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


__all__ = ["push_folder", "check_hub_ready"]
