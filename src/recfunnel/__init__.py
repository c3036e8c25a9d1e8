"""recfunnel: a deep recommender system from interaction logs to a served recall -> rank -> rerank funnel."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public objects are imported on first use so `import recfunnel` stays fast and torch-free
# until a model is actually needed.
_LAZY = {
    "Schema": "recfunnel.schema",
    "Categorical": "recfunnel.schema",
    "MultiCategorical": "recfunnel.schema",
    "Sequence": "recfunnel.schema",
    "Numeric": "recfunnel.schema",
    "Label": "recfunnel.schema",
    "Batch": "recfunnel.data",
    "FeatureEncoder": "recfunnel.data",
    "Trainer": "recfunnel.train",
    "Ranker": "recfunnel.estimators",
    "GBDTRanker": "recfunnel.estimators",
    "FTRLRanker": "recfunnel.estimators",
    "Retriever": "recfunnel.estimators",
    "Funnel": "recfunnel.funnel",
    "load": "recfunnel.funnel",
    # through the estimators, which register GBDT+LR, FTRL and LambdaMART next to the torch models
    "get_model": "recfunnel.estimators",
    "list_models": "recfunnel.estimators",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recfunnel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", *_LAZY]
