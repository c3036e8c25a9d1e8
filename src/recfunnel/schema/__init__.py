"""Feature specs and the Schema; no torch import here."""

from recfunnel.schema.schema import Schema
from recfunnel.schema.specs import Categorical, Feature, Label, MultiCategorical, Numeric, Sequence, Spec

__all__ = ["Schema", "Categorical", "MultiCategorical", "Sequence", "Numeric", "Label", "Feature", "Spec"]
