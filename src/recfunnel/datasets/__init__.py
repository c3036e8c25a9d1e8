"""The built-in synthetic shop (and, later, loaders for named public datasets)."""

from __future__ import annotations

from recfunnel.datasets.criteo_like import make_criteo_like, write_criteo_like, write_criteo_like_parts
from recfunnel.datasets.shop import Shop, load_shop, make_shop, save_shop, write_shop_parts

__all__ = ["Shop", "load_shop", "make_shop", "save_shop", "write_shop_parts", "make_criteo_like", "write_criteo_like",
           "write_criteo_like_parts"]
