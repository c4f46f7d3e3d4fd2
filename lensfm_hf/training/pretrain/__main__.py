"""`python -m lensfm_hf.training.pretrain RECIPE [key=value ...]`, also under torchrun / accelerate launch."""

import sys

from .run import main

sys.exit(main())
