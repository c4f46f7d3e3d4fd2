"""`lensfm demo`: a Gradio app that shows what each zoo model infers of one lens image (optional extra `[demo]`).

`inputs` checks uploads and simulates images, `analysis` runs the models, `views` draws, `app` builds the page.
Importing this package does not import gradio; `build_app` does.
"""

from .app import build_app, installed_zoo_models
from .inputs import DemoInputError, read_upload, simulate_image

__all__ = ["DemoInputError", "build_app", "installed_zoo_models", "read_upload", "simulate_image"]
