"""install_cache: hub-cache layout, deterministic commit hash, and offline loading by repo id."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from fake_hub import run_client
from safetensors.numpy import load_file

from lensfm_hf.cli import main
from lensfm_hf.hub import install_cache
from lensfm_hf.hub.cache import content_commit_hash


def test_layout_and_deterministic_commit(exported, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(exported / "encoder", folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"x")

    snapshot = install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    storage = tmp_path / "cache" / "models--lensfm--tiny-encoder"
    commit = (storage / "refs" / "main").read_text()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert snapshot == storage / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in (exported / "encoder").iterdir())
    assert (snapshot / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()

    assert install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache") == snapshot  # idempotent
    assert content_commit_hash(exported / "encoder") == commit  # debris does not change the hash

    (folder / "README.md").write_text("# changed\n")
    new_snapshot = install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    assert new_snapshot != snapshot and (storage / "refs" / "main").read_text() == new_snapshot.name
    assert not list((storage / "snapshots").glob(".*incomplete"))

    with pytest.raises(ValueError, match="config.json"):
        install_cache(tmp_path / "cache", "lensfm/x", cache_dir=tmp_path / "other")


def test_offline_load_by_repo_id(auto_image_processor, exported, dataset_folder, fake_hub_env, tmp_path):
    hf_home = tmp_path / "offline_home"
    assert main(["install-cache", str(exported / "encoder"), "--repo", "lensfm/tiny-encoder",
                 "--cache-dir", str(hf_home / "hub")]) == 0
    dataset_snapshot = install_cache(dataset_folder, "lensfm/tiny-sims", repo_type="dataset", cache_dir=hf_home / "hub")

    # Offline, with the endpoint pointing nowhere: any Hub access would fail loudly.
    env = {**fake_hub_env, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_TOKEN")
    code = f"""
    import json
    import sys
    import torch
    from safetensors.numpy import load_file, save_file
    from transformers import AutoImageProcessor, AutoModel

    ref = load_file({str(exported / "reference.safetensors")!r})

    def pooler(**kwargs):
        processor = AutoImageProcessor.from_pretrained("lensfm/tiny-encoder", **kwargs)
        model = AutoModel.from_pretrained("lensfm/tiny-encoder", **kwargs)
        with torch.no_grad():
            out = model(processor(ref["images"], return_tensors="pt")["pixel_values"]).pooler_output
        return out.numpy(), type(model).__module__

    remote, remote_module = pooler(trust_remote_code=True)   # as a user without lensfm_hf

    sys.meta_path.remove(next(f for f in sys.meta_path if type(f).__name__ == "_RefuseLensfm"))
    import lensfm_hf  # registers LensViT with the Auto classes: no remote code needed
    local, local_module = pooler()

    from datasets import load_dataset
    ds = load_dataset({str(dataset_snapshot)!r}, "model2")
    save_file({{"remote": remote, "local": local}}, "out.safetensors")
    print("RESULT=" + json.dumps([remote_module, local_module, ds["train"].num_rows]))
    """
    result = run_client(code, env, cwd=tmp_path, block_lensfm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    remote_module, local_module, n_train = json.loads(result.stdout.split("RESULT=")[-1])
    assert remote_module.startswith("transformers_modules.") and local_module.startswith("lensfm_hf.models")
    assert n_train == 6
    out, ref = load_file(str(tmp_path / "out.safetensors")), load_file(str(exported / "reference.safetensors"))
    for key in ("remote", "local"):
        torch.testing.assert_close(torch.from_numpy(out[key]), torch.from_numpy(ref["encoder_pooler"]), msg=key)
    assert os.listdir(hf_home / "hub") and "datasets--lensfm--tiny-sims" in os.listdir(hf_home / "hub")


def test_install_cache_leaves_out_trainer_state(exported, tmp_path, caplog):
    folder = tmp_path / "checkpoint-4"
    shutil.copytree(exported / "encoder", folder)
    denied = ["training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
              "pretraining/optimizer.pt"]
    for rel in denied:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"pickled hf_secret_token")
    with caplog.at_level("WARNING", logger="lensfm_hf.hub.push"):
        snapshot = install_cache(folder, "lensfm/ckpt", cache_dir=tmp_path / "cache")
    installed = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
    assert not installed & set(denied)
    assert {p.name for p in (exported / "encoder").iterdir()} <= {rel.split("/")[0] for rel in installed}
    assert all(rel in caplog.text for rel in denied), caplog.text
    assert content_commit_hash(folder) == content_commit_hash(exported / "encoder")


def test_install_cache_refuses_a_folder_that_would_not_load(exported, tmp_path):
    folder = tmp_path / "finetuned"
    shutil.copytree(exported / "classifier", folder)
    (folder / "configuration_lens_vit.py").unlink()
    (folder / "README.md").unlink()
    assert main(["install-cache", str(folder), "--repo", "lensfm/x", "--cache-dir", str(tmp_path / "c")]) == 2
    with pytest.raises(ValueError) as err:
        install_cache(folder, "lensfm/x", cache_dir=tmp_path / "c")
    assert "configuration_lens_vit.py" in str(err.value) and "README.md" in str(err.value)
    assert "save_for_hub" in str(err.value)
    assert not (tmp_path / "c").exists()


def test_install_cache_and_push_put_the_repo_id_in_the_card_and_leave_the_folder(tmp_path, monkeypatch):
    """Issue 20.9: a card made without a repo id names a placeholder; installing or pushing it as ORG/NAME writes a
    card whose code names ORG/NAME, in the copy only (the folder's card is left as it was)."""
    from lensfm_hf.hub import push as push_module
    from lensfm_hf.hub import save_for_hub
    from lensfm_hf.hub.cards import REPO_ID_PLACEHOLDER_OWNER
    from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTModel

    folder = tmp_path / "outputs" / "run" / "model"
    torch.manual_seed(0)
    save_for_hub(LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)), LensImageProcessor(),
                 folder)
    card = (folder / "README.md").read_text()
    assert f'repo = "{REPO_ID_PLACEHOLDER_OWNER}/' in card and str(tmp_path) not in card
    snapshot = install_cache(folder, "me/lens-encoder", cache_dir=tmp_path / "cache")
    installed = (snapshot / "README.md").read_text()
    assert 'repo = "me/lens-encoder"' in installed and REPO_ID_PLACEHOLDER_OWNER not in installed
    assert (folder / "README.md").read_text() == card
    assert install_cache(folder, "me/lens-encoder", cache_dir=tmp_path / "cache") == snapshot  # same content, same commit

    uploaded = {}

    def fake_upload(*, folder_path, **kwargs):
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())

    monkeypatch.setattr(push_module, "create_repo", lambda *args, **kwargs: "https://hub/me/pushed")
    monkeypatch.setattr(push_module, "upload_folder", fake_upload)
    push_module.push_folder(folder, "me/pushed", token="hf_test")
    assert 'repo = "me/pushed"' in uploaded["card"] and REPO_ID_PLACEHOLDER_OWNER not in uploaded["card"]
    assert uploaded["files"] == sorted(p.name for p in folder.iterdir())
    assert (folder / "README.md").read_text() == card


def test_two_installs_of_the_same_content_at_once_both_succeed(exported, tmp_path, monkeypatch):
    """Issue 21 item 6: two same-content installs shared the staging folder and one crashed ('[Errno 2]', no path).
    The second starts while the first is copying; with the per-repo lock it waits for the first instead."""
    import threading

    from lensfm_hf.hub import cache

    started, errors, real_copy = threading.Event(), [], shutil.copy2
    second = threading.Thread(target=lambda: _install_into(exported / "encoder", tmp_path, errors))

    def copy_while_another_starts(src, dst, **kwargs):
        if not started.is_set():
            started.set()
            second.start()
            second.join(timeout=1)  # the second runs into the first's staging folder, or waits on the lock
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(cache.shutil, "copy2", copy_while_another_starts)
    first = install_cache(exported / "encoder", "lensfm/race", cache_dir=tmp_path / "hub")
    second.join()
    assert not errors, errors
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert not list((tmp_path / "hub").rglob("*.incomplete")) and not (tmp_path / "hub" / ".locks").exists()


def _install_into(folder, tmp_path, errors):
    try:
        install_cache(folder, "lensfm/race", cache_dir=tmp_path / "hub")
    except Exception as err:  # noqa: BLE001 -- reported by the test's thread
        errors.append(err)
