"""ItemCF at catalogue scale: fit time and peak memory of the blocked top-k neighbour computation.

Generates power-law (Zipf-like) interactions, fits ``itemcf`` on them and prints a table: time,
peak resident memory, the interaction matrix, the kept neighbours, and how big the full item-item
co-occurrence product would have been (the work it never holds at once).

    .venv/bin/python benchmarks/itemcf_scale.py                      # 200k users, 1M items, 5M rows
    .venv/bin/python benchmarks/itemcf_scale.py --items 100000 --interactions 1000000 --block-nnz 262144
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from recfunnel.data.interactions import IdMap, Interactions, retrieval_schema
from recfunnel.models.retrieval.itemcf import ItemCF, item_neighbors


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zipf_draws(rng: np.random.Generator, size: int, n: int, exponent: float) -> np.ndarray:
    """``size`` indices in [0, n) with P(i) proportional to (i + 1) ** -exponent, shuffled ids."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    draws = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return rng.permutation(n)[np.minimum(draws, n - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--item-exponent", type=float, default=1.0, help="Zipf exponent of item popularity")
    parser.add_argument("--user-exponent", type=float, default=0.5, help="Zipf exponent of user activity")
    parser.add_argument("--neighbors", type=int, default=100)
    parser.add_argument("--similarity", default="cosine", choices=["cosine", "jaccard"])
    parser.add_argument("--block-nnz", type=int, default=None, help="products per block (library default if unset)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    rows: list[tuple[str, str]] = [("peak RSS after imports", f"{peak_rss_mib():,.0f} MiB")]
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    users = zipf_draws(rng, args.interactions, args.users, args.user_exponent)
    items = zipf_draws(rng, args.interactions, args.items, args.item_exponent)
    data = Interactions(users, items, IdMap(np.arange(args.users)), IdMap(np.arange(args.items)))
    matrix = data.matrix()
    degrees = np.diff(matrix.indptr).astype(np.float64)
    products = float(np.minimum(matrix.T @ degrees, args.items).sum())
    rows += [("generate", f"{time.perf_counter() - started:.1f} s"),
             ("distinct (user, item) pairs", f"{matrix.nnz:,}"),
             ("items with an interaction", f"{int((np.diff(matrix.tocsc().indptr) > 0).sum()):,}"),
             ("interaction matrix (CSR)", f"{(matrix.data.nbytes + matrix.indices.nbytes) / 2**20:,.0f} MiB"),
             ("X.T @ X products (>= its nnz)", f"{products:,.0f} = {products * 12 / 2**30:,.1f} GiB as CSR"),
             ("peak RSS before fit", f"{peak_rss_mib():,.0f} MiB")]
    del matrix
    started = time.perf_counter()
    if args.block_nnz is None:
        model = ItemCF(retrieval_schema(args.users, args.items), similarity=args.similarity,
                       neighbors=args.neighbors).fit(data)
        neighbours = model.neighbor_matrix
    else:
        neighbours = item_neighbors(data.matrix(), similarity=args.similarity, neighbors=args.neighbors,
                                    block_nnz=args.block_nnz)
    rows += [("fit", f"{time.perf_counter() - started:.1f} s"),
             ("kept neighbours", f"{neighbours.nnz:,} = {neighbours.nnz * 8 / 2**20:,.0f} MiB"),
             ("peak RSS after fit", f"{peak_rss_mib():,.0f} MiB")]
    width = max(len(name) for name, _ in rows)
    print(f"itemcf scale: {args.users:,} users, {args.items:,} items, {args.interactions:,} draws, "
          f"k={args.neighbors}, {args.similarity}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
