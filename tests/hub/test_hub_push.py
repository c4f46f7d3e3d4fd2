"""push_folder / `lensfm push` against the local fake Hub, then pulling as a user without lensfm_hf."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket

import pyarrow.parquet as pq
import pytest
import torch
from fake_hub import run_client
from safetensors.numpy import load_file

from lensfm_hf.hub import push_folder


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(args: list[str]) -> str:
    return f"import sys\nfrom lensfm_hf.cli import main\nsys.exit(main({args!r}))\n"


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_push_then_pull_model_and_dataset(
    auto_image_processor, exported, dataset_folder, fake_hub_server, fake_hub_env, tmp_path
):
    encoder = tmp_path / "encoder"
    shutil.copytree(exported / "encoder", encoder)
    (encoder / "__pycache__").mkdir()
    (encoder / "__pycache__" / "modeling_lens_vit.cpython-311.pyc").write_bytes(b"debris")
    push = f"""
    from lensfm_hf.cli import main
    from lensfm_hf.hub import push_folder
    assert main(["push", {str(encoder)!r}, "--repo", "lensfm/tiny-encoder"]) == 0
    assert main(["push", {str(dataset_folder)!r}, "--repo", "lensfm/tiny-sims", "--repo-type", "dataset"]) == 0
    print("URL=" + push_folder({str(encoder)!r}, "lensfm/tiny-encoder", commit_message="again"))
    """
    result = run_client(push, fake_hub_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"pushed {encoder} to {fake_hub_server.url}/lensfm/tiny-encoder" in result.stdout
    assert result.stdout.strip().endswith(f"URL={fake_hub_server.url}/lensfm/tiny-encoder")

    files = fake_hub_server.files("lensfm/tiny-encoder")
    assert {p.name for p in (exported / "encoder").iterdir()} == set(files)
    weights = (exported / "encoder" / "model.safetensors").read_bytes()
    assert files["model.safetensors"] == weights
    assert f"PUT /__lfs/{hashlib.sha256(weights).hexdigest()}" in fake_hub_server.requests  # went through LFS
    assert set(fake_hub_server.files("lensfm/tiny-sims", "dataset")) == {
        "README.md", "model2/train-00000-of-00001.parquet", "model2/test-00000-of-00001.parquet"}

    # The card's own usage snippet must run as written against the pushed repo.
    readme = files["README.md"].decode()
    snippet = re.search(r"## How to use\n.*?```python\n(.*?)```", readme, re.DOTALL).group(1)  # its first code block
    assert 'repo = "lensfm/tiny-encoder"' in snippet

    pull = f"""
    import json
    import numpy as np
    import torch
    from datasets import load_dataset
    from huggingface_hub import ModelCard
    from safetensors.numpy import load_file, save_file
    from transformers import AutoImageProcessor, AutoModel

    ref = load_file({str(exported / "reference.safetensors")!r})
    processor = AutoImageProcessor.from_pretrained("lensfm/tiny-encoder", trust_remote_code=True)
    model = AutoModel.from_pretrained("lensfm/tiny-encoder", trust_remote_code=True)
    pixel_values = processor(ref["images"], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        pooler = model(pixel_values).pooler_output.numpy()
    save_file({{"encoder_pooler": pooler}}, "out.safetensors")

    exec({snippet!r})
    assert embeddings.shape == (4, 32)

    card = ModelCard.load("lensfm/tiny-encoder")
    ds = load_dataset("lensfm/tiny-sims", "model2")
    print("RESULT=" + json.dumps({{
        "model_module": type(model).__module__,
        "tags": card.data.tags,
        "splits": {{name: split.num_rows for name, split in ds.items()}},
        "labels": ds["train"].features["label"].names,
        "first_image": np.asarray(ds["test"][0]["pixel_values"]).tolist(),
    }}))
    """
    result = run_client(pull, {k: v for k, v in fake_hub_env.items() if k != "PYTHONPATH"}, cwd=tmp_path,
                        block_lensfm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    got = json.loads(result.stdout.split("RESULT=")[-1])
    assert got["model_module"].startswith("transformers_modules.")
    assert "gravitational-lensing" in got["tags"]
    assert got["splits"] == {"train": 6, "test": 3}
    assert got["labels"] == ["no_sub", "cdm", "axion"]
    test_table = pq.read_table(dataset_folder / "model2" / "test-00000-of-00001.parquet")
    assert got["first_image"] == test_table.column("pixel_values")[0].as_py()
    out, ref = load_file(str(tmp_path / "out.safetensors")), load_file(str(exported / "reference.safetensors"))
    torch.testing.assert_close(torch.from_numpy(out["encoder_pooler"]), torch.from_numpy(ref["encoder_pooler"]))


@pytest.mark.slow  # a CLI subprocess (~8 s), like test_cli_push_hub_unreachable which stays in the default run
def test_cli_push_without_token_or_with_a_refused_one(exported, fake_hub_server, fake_hub_env, tmp_path):
    fake_hub_server.write_token = "hf_the_right_token"
    env = {k: v for k, v in fake_hub_env.items() if k != "HF_TOKEN"}
    code = f"""
    import contextlib, io, json, os
    from lensfm_hf.cli import main

    def push():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["push", {str(exported / "encoder")!r}, "--repo", "lensfm/x"])
        return [code, err.getvalue()]

    missing = push()
    os.environ["HF_TOKEN"] = "hf_a_wrong_token"  # get_token() reads the environment on each call
    refused = push()
    print("RESULT=" + json.dumps([missing, refused]))
    """
    result = run_client(code, env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    (code_missing, err_missing), (code_refused, err_refused) = json.loads(result.stdout.split("RESULT=")[-1])
    assert code_missing == 2 and "hf auth login" in err_missing and "HF_TOKEN" in err_missing
    assert code_refused == 2 and "refused the token" in err_refused and "HTTP 401" in err_refused
    assert "Traceback" not in err_missing + err_refused, err_refused
    assert ("model", "lensfm/x") not in fake_hub_server.repos


def test_cli_push_hub_unreachable(exported, fake_hub_env, tmp_path):
    env = {**fake_hub_env, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    result = run_client(_cli(["push", str(exported / "encoder"), "--repo", "lensfm/x"]), env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Cannot reach the Hub" in result.stderr and "HF_ENDPOINT" in result.stderr
    assert "Traceback" not in result.stderr


def test_push_folder_refuses_folders_that_are_not_hub_ready(exported, dataset_folder, tmp_path):
    # These checks run before any network access, so they are safe in the test process.
    with pytest.raises(FileNotFoundError, match="not a folder"):
        push_folder(tmp_path / "missing", "lensfm/x", token="t")
    with pytest.raises(ValueError, match="no config.json.*save_for_hub"):
        push_folder(dataset_folder, "lensfm/x", token="t")
    with pytest.raises(ValueError, match="no README.md"):
        push_folder(tmp_path, "lensfm/x", repo_type="dataset", token="t")
    with pytest.raises(ValueError, match="ORG/NAME"):
        push_folder(exported / "encoder", "no-namespace", token="t")
    with pytest.raises(ValueError, match="repo_type"):
        push_folder(exported / "encoder", "lensfm/x", repo_type="space", token="t")


# Files a Trainer writes into checkpoint-N next to the weights; training_args.bin pickles the hub token.
TRAINER_STATE = ["training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                 "pretraining/optimizer.pt", "pretraining/rng_state_1.pth"]


def _with_trainer_state(exported, tmp_path):
    folder = tmp_path / "checkpoint-4"
    shutil.copytree(exported / "encoder", folder)
    for rel in TRAINER_STATE:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"pickled hf_secret_token")
    return folder


def test_cli_push_leaves_out_trainer_state_and_pickles(exported, fake_hub_server, fake_hub_env, tmp_path):
    folder = _with_trainer_state(exported, tmp_path)
    result = run_client(_cli(["push", str(folder), "--repo", "lensfm/ckpt"]), fake_hub_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    files = fake_hub_server.files("lensfm/ckpt")
    assert set(files) == {p.name for p in (exported / "encoder").iterdir()}
    assert not any(b"hf_secret_token" in data for data in files.values())
    for rel in TRAINER_STATE:  # the user is told what was left out
        assert rel in result.stderr, result.stderr


def test_push_refuses_folders_that_would_not_load_without_lensfm(exported, tmp_path):
    # A folder as transformers' save_pretrained writes it (the old `lensfm finetune` output): no remote code,
    # processor or card.
    from lensfm_hf import LensViTForImageClassification, LensViTConfig

    bare = tmp_path / "bare"
    LensViTForImageClassification(LensViTConfig.from_pretrained(exported / "classifier")).save_pretrained(bare)
    with pytest.raises(ValueError) as err:
        push_folder(bare, "lensfm/x", token="t")
    message = str(err.value)
    assert "would not load where lensfm_hf is not installed" in message and "save_for_hub" in message
    assert "preprocessor_config.json" in message and "README.md" in message

    broken = {
        "configuration_lens_vit.py": "configuration_lens_vit.py",
        "modeling_lens_vit.py": "modeling_lens_vit.py",
        "image_processing_lens_vit.py": "image_processing_lens_vit.py",
        "preprocessor_config.json": "preprocessor_config.json is missing",
        "README.md": "README.md (the model card) is missing",
        "model.safetensors": "model.safetensors is missing",
    }
    for removed, expected in broken.items():
        folder = tmp_path / f"without-{removed}"
        shutil.copytree(exported / "classifier", folder)
        (folder / removed).unlink()
        with pytest.raises(ValueError, match="would not load") as err:
            push_folder(folder, "lensfm/x", token="t")
        assert expected in str(err.value) and "save_for_hub" in str(err.value)

    folder = tmp_path / "no-auto-map"
    shutil.copytree(exported / "encoder", folder)
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type 'lens_vit'.*no auto_map"):
        push_folder(folder, "lensfm/x", token="t")

    (folder / "config.json").write_text("{cut")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        push_folder(folder, "lensfm/x", token="t")

    # The exports themselves pass: the checks run before the token is needed, so a missing one is next.
    for name in ("encoder", "classifier"):
        with pytest.raises(ValueError, match="No Hugging Face token"):
            push_folder(exported / name, "lensfm/x", token="", timeout=1)


def test_push_folder_refuses_a_bad_timeout(exported):
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="timeout must be a positive"):
            push_folder(exported / "encoder", "lensfm/x", token="t", timeout=bad)


@pytest.mark.slow  # a CLI subprocess (~8 s), like test_cli_push_hub_unreachable which stays in the default run
def test_cli_push_hub_that_never_answers(exported, fake_hub_env, tmp_path):
    # A server that completes the TCP handshake (the kernel does, from the listen backlog) but never reads
    # or answers: before the timeout, huggingface_hub's client waited forever.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        env = {**fake_hub_env, "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}"}
        args = ["push", str(exported / "encoder"), "--repo", "lensfm/x", "--timeout", "1"]
        # The subprocess timeout only guards the test run; the push itself must give up after ~1 s.
        result = run_client(_cli(args), env, cwd=tmp_path, timeout=240)
    assert result.returncode == 2, result.stderr[-4000:]
    assert "did not answer within 1 s" in result.stderr and "--timeout" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
