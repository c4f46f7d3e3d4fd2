"""install_cache: hub-cache layout, deterministic commit hash, and offline loading by repo id."""

from __future__ import annotations

import json
import os
import re
import shutil

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
