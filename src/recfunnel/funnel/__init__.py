"""The funnel: recall sources -> ranker -> rerankers over one catalogue, saved as one artifact."""

from recfunnel.estimators.loading import load
from recfunnel.estimators.results import Recommendation, Recommendations
from recfunnel.funnel.candidates import Candidates, Query
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.funnel.funnel import Funnel
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall, RecallStage
from recfunnel.funnel.rerank import (
    MMR,
    RERANKERS,
    Boost,
    DropSeen,
    Filter,
    Limit,
    MaxPerGroup,
    Reranker,
    reranker_from_dict,
)

__all__ = ["MMR", "RERANKERS", "Boost", "Candidates", "Catalogue", "DropSeen", "Filter", "Funnel", "Limit",
           "MaxPerGroup", "NewItems", "Query", "Rank", "Recall", "RecallStage", "Recommendation", "Recommendations",
           "Reranker", "reranker_from_dict", "load"]
