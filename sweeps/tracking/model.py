"""A trained trial as an MLflow model: images ``[n, C, 64, 64]`` (floats in [0, 1]) → codes.

MLflow "models from code": this file is the model's definition (MLflow copies it into the
model and runs it to load), and the model's only artifacts are the trial's
``model.safetensors`` and ``config.json``; nothing is pickled. The codes are the posterior
means ``[n, latent_dim]``, what the disentanglement metrics score. The model carries the code
it runs (``betavae/models.py`` as ``betavae_models``): loading needs torch, numpy, safetensors
and mlflow, not this package.

    model = mlflow.pyfunc.load_model(f"models:/{model_id}")   # or runs:/RUN_ID/model
    codes = model.predict(images.astype(np.float32))
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

WEIGHTS = "weights"  # the artifact keys
CONFIG = "config"


class BetaVAEEncoder(PythonModel):
    """Loads the weights into ``betavae.models``' model; ``predict`` returns posterior means."""

    def load_context(self, context: Any) -> None:
        import safetensors.torch
        import torch

        try:  # the model's own copy of betavae/models.py (code_paths)
            from betavae_models import build_model
        except ImportError:  # a model logged with the whole betavae package
            from betavae.models import build_model

        with open(context.artifacts[CONFIG]) as f:
            config = json.load(f)
        weights = safetensors.torch.load_file(context.artifacts[WEIGHTS])
        weights = {k.removeprefix("_orig_mod."): v for k, v in weights.items()}
        channels = (context.model_config or {}).get("channels", 1)
        model = build_model(config["model"], int(config["latent_dim"]), int(channels))
        model.load_state_dict(weights)
        self._model = model.eval()
        self._torch = torch

    # No type hints here: MLflow would derive a schema from them; the logged signature is it.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        torch = self._torch
        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.inference_mode():
            codes = [self._model.encode(chunk)[0] for chunk in images.split(1024)]
        return torch.cat(codes).numpy()


mlflow.models.set_model(BetaVAEEncoder())
