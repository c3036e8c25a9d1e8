"""Sub-commands about whole funnels: build, demo, and evaluate / recommend / similar on a funnel."""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recfunnel.cli.arguments import recent_items
from recfunnel.cli.output import emit_json

console = Console(stderr=True, highlight=False)


def _out() -> Console:
    """stdout for tables: a terminal's own width, or 160 columns when piped to a file or a pager,
    where Rich's default of 80 would cut the funnel table's numbers short."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=160)


def _cell(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:+.4f}" if signed else f"{value:.4f}"
    return str(value)


def stage_table(report: dict[str, Any], title: str) -> Table:
    """The funnel's offline table: one row per stage; a reranker's row also shows the NDCG it
    cost and the diversity (ILD) it bought against the row before it."""
    rows = report["stages"]
    table = Table(title=title, title_justify="left")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for column in columns:  # "ndcg_change@10" shows as "Δndcg@10"; stage names never wrap
        table.add_column("Δ" + column.replace("_change", "") if "_change" in column else column,
                         no_wrap=column == "stage")
    for row in rows:
        table.add_row(*(_cell(row.get(c), "_change" in c) for c in columns))
    return table


def evaluate_funnel(funnel: Any, args: argparse.Namespace) -> int:
    """`recfunnel evaluate FUNNEL --data test.csv`: every stage's recall, NDCG, diversity, coverage."""
    from recfunnel.data import load_frame

    exclude = None
    if args.exclude:
        import pandas as pd

        exclude = pd.concat([load_frame(path, fmt=args.format) for path in args.exclude], ignore_index=True)
    k = int(args.k.split(",")[0]) if args.k else 10
    report = funnel.evaluate(load_frame(args.data, fmt=args.format), k=k, exclude=exclude)
    if args.json:
        emit_json(report)
    else:
        out = _out()
        out.print(stage_table(report, f"funnel on {args.data} ({report['users']:,} users)"))
        for label, found in report.get("objectives", {}).items():
            out.print(stage_table(found, f"objective {label}: the test rows with {label} > 0 ({found['users']:,} users)"))
    return 0


def recommend_funnel(funnel: Any, args: argparse.Namespace) -> int:
    """`recfunnel recommend FUNNEL --user ID`: the final lists with their sources and reasons."""
    recent = recent_items(getattr(args, "recent", None))
    lists = [funnel.recommend(user, k=args.k, recent=recent) for user in args.user]
    for result in lists:
        if result.shortfall:
            console.print(f"user {escape(str(result.user_id))}: {len(result.item_ids)} of the {args.k} items asked "
                          "for; the candidates that passed the rerankers ran out.", soft_wrap=True)
    if args.json:
        emit_json([{"user_id": r.user_id, "items": r.to_records(), "shortfall": r.shortfall} for r in lists])
        return 0
    for result in lists:
        table = Table(title=f"user {result.user_id}", title_justify="left")
        objectives = list(result.objectives[0]) if result.objectives else []  # a multi-task ranker's labels
        for column in ("rank", "item_id", "title", "score", *objectives, "why"):
            table.add_column(column)
        for rank, record in enumerate(result.to_records(), start=1):
            table.add_row(str(rank), str(record["item_id"]), str(record.get("title", "")), f"{record['score']:.4f}",
                          *(f"{record['objectives'][label]:.4f}" for label in objectives),
                          "; ".join(record["reasons"]))
        Console().print(table)
    return 0


def similar_funnel(funnel: Any, args: argparse.Namespace) -> int:
    """`recfunnel similar FUNNEL --item ID`: similar items from the first recall source that knows each."""
    from recfunnel.errors import DataError

    found = {item: funnel.similar(item, k=args.k) for item in args.item}
    unknown = [item for item, items in found.items() if not items]
    if unknown:
        raise DataError(f"unknown item id(s) {unknown[:5]}: no recall source of this funnel knows them.")
    if args.json:
        emit_json([{"query_item": item, "items": items} for item, items in found.items()])
        return 0
    for item, items in found.items():
        rows = funnel.catalogue.records(funnel.catalogue.index(items), ["title", "category"])
        table = Table(title=f"{args.k} items most similar to {item}", title_justify="left")
        for column in ("rank", "item_id", "title", "category"):
            table.add_column(column)
        for rank, (other, row) in enumerate(zip(items, rows, strict=True), start=1):
            table.add_row(str(rank), str(other), str(row.get("title", "")), str(row.get("category", "")))
        Console().print(table)
    return 0


def run_build(args: argparse.Namespace) -> int:
    """`recfunnel build funnel.yaml [--out DIR]`: assemble trained stages into one funnel artifact."""
    from recfunnel.config import load_config
    from recfunnel.funnel.build import funnel_from_config

    funnel, out = funnel_from_config(load_config(args.config), train=args.train, user_col=args.user_col,
                                     item_col=args.item_col, time_col=args.time_col,
                                     log=lambda line: console.print(escape(line), soft_wrap=True))
    path = funnel.save(args.out or out)
    if args.json:
        emit_json({"artifact": str(path), "items": len(funnel.catalogue),
                   "recall": [s.name for s in funnel.recall]})
    else:
        console.print(f"saved the funnel ({len(funnel.recall)} recall sources, {len(funnel.catalogue):,} items) "
                      f"to [bold]{escape(str(path))}[/]; try:\n  recfunnel serve {escape(str(path))}", soft_wrap=True)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`recfunnel demo`: the main job on the synthetic shop (or MovieLens with --data)."""
    from recfunnel.demo import run_demo as demo

    report = demo(out=args.out, data=args.data, num_users=args.users, num_items=args.items,
                  num_impressions=args.impressions, max_epochs=args.epochs, log=console.print)
    if args.json:
        emit_json(report)
    else:
        _print_demo(report)
    if args.no_serve:
        return 0
    from recfunnel.cli.serve import serve

    return serve(report["artifact"], host=args.host, port=args.port)


def _print_demo(report: dict[str, Any]) -> None:
    out = _out()
    rows = report["models"]
    table = Table(title=f"rank: test metrics on {report['rows']['test']:,} held-out rows of the {report['data']}",
                  title_justify="left")
    for column in ("model", "AUC", "gAUC", "logloss", "train s"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["model"], _cell(r["auc"]), _cell(r["gauc"]), _cell(r["logloss"]), f"{r['seconds']:.1f}")
    out.print(table)
    if report["best_auc"] is not None:
        out.print(f"best achievable AUC (true click probability): {report['best_auc']:.4f}")
    out.print(stage_table(report["funnel"], f"funnel: each stage on {report['funnel']['users']:,} test users' clicks"))
    if any("true_ctr@10" in row for row in report["funnel"]["stages"]):
        out.print("true_ctr@10 is the mean true click probability of the first 10 items: logged clicks favour what was "
                  "shown most, so recall order wins on recall/NDCG while the ranker finds what users would click.",
                  soft_wrap=True)
    artifact = escape(report["artifact"])
    out.print(f"saved the funnel to [bold]{artifact}[/]; try:\n"
              f"  recfunnel evaluate {artifact} --data {escape(report['test_file'])}\n"
              f"  recfunnel evaluate {artifact}/rank --data {escape(report['rank_test_file'])} --json\n"
              f"  recfunnel serve {artifact}", soft_wrap=True)
