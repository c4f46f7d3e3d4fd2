"""Getting checkpoints and datasets onto the Hub and into the local cache.

`save_for_hub` writes a hub-ready model folder (weights, processor, card, remote code), `push_folder`
uploads a folder, `install_cache` places one in the offline hub cache, and `render_model_card`
builds the card with its `model-index` from evaluation results.
"""

from .cache import install_cache
from .cards import render_model_card, results_to_eval_results
from .export import save_for_hub
from .push import push_folder

__all__ = ["install_cache", "push_folder", "render_model_card", "results_to_eval_results", "save_for_hub"]
