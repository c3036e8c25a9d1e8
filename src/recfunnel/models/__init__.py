"""Models and their registry: an explicit table of imports, each module registering its model."""

from recfunnel.models.base import (
    KINDS,
    ModelInfo,
    ModelOutput,
    MultiTaskModel,
    RankingModel,
    RecModel,
    build_model,
    get_model,
    list_models,
    register_estimator,
    register_model,
    split_output,
)
from recfunnel.models.multitask import esmm, mmoe, ple, shared_bottom  # noqa: E402, F401

# Every built-in model, by kind: a new model file adds its line here (nothing scans directories).
from recfunnel.models.ranking import (  # noqa: E402, F401
    autoint,
    dcn,
    dcnv2,
    deepfm,
    dien,
    din,
    dlrm,
    ffm,
    fm,
    fnn,
    lr,
    mlr,
    nfm,
    pnn,
    widedeep,
    xdeepfm,
)
from recfunnel.models.rating import autorec, neumf, svd, svdpp  # noqa: E402, F401
from recfunnel.models.retrieval import (  # noqa: E402, F401
    als,
    bpr,
    fm_recall,
    item2vec,
    itemcf,
    mind,
    popularity,
    two_tower,
    youtube_dnn,
)
from recfunnel.models.sequential import bert4rec, gru4rec, sasrec  # noqa: E402, F401

__all__ = ["KINDS", "ModelInfo", "ModelOutput", "MultiTaskModel", "RankingModel", "RecModel", "build_model", "get_model", "list_models",
           "register_estimator", "register_model", "split_output"]
