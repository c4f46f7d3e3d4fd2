"""The environment for Hub clients run in a fresh interpreter, offline; shared by tests/hub and tests/training."""

from __future__ import annotations

import os


def offline_env(tmp_path) -> dict[str, str]:
    """This process's environment without HF settings, plus a fresh HF_HOME and every offline switch: a client
    that tried to reach the Hub would fail instead of waiting."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_XET="1", HF_ENDPOINT="http://127.0.0.1:9", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env
