"""The lensfm-hf demo as a Hugging Face Space: every zoo model, loaded by name from the Hub (lensfm/<method>).

Locally: `python spaces/lensfm-demo/app.py` (or `lensfm demo`, which also installs the checkout's zoo/ folders).
"""

from lensfm_hf.demo import build_app
from lensfm_hf.pretraining.registry import PRETRAINING_METHODS, zoo_repo_id

MODELS = [zoo_repo_id(method) for method in PRETRAINING_METHODS]  # lensfm/mae, ..., lensfm/ijepa-physics
# Fine-tuned classifiers: add their hub ids here (e.g. a `lensfm finetune` output pushed with `lensfm push`).
CLASSIFIERS: list[str] = []

demo = build_app(MODELS, CLASSIFIERS, reference_per_class=200, default_encoder=zoo_repo_id("ijepa_physics"))

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch()
