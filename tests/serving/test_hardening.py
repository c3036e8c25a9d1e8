"""What an outsider tried against the server, each now refused (regression: #15): artifacts that
name code, reloads from anywhere, unbounded item attributes, NaN models, huge integers, stray
hosts and doubled keys."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recfunnel.errors import ArtifactError, ConfigError
from recfunnel.serving import EventStore, create_app
from recfunnel.serving.probe import probe
from recfunnel.serving.state import ItemLimits


@pytest.fixture
def root(shop, tmp_path: Path) -> Path:
    """An artifacts root of this test's own, holding a copy of the shop funnel at ``root/shop``."""
    folder = tmp_path / "artifacts"
    shutil.copytree(shop.artifact, folder / "shop")
    return folder


@pytest.fixture
def serve(root: Path, tmp_path: Path) -> Callable[..., TestClient]:
    """``serve(**create_app options)``: a TestClient over ``root/shop`` (closed at the end)."""
    clients: list[TestClient] = []

    def make(**options: object) -> TestClient:
        options.setdefault("events", tmp_path / "events.sqlite")
        client = TestClient(create_app(root / "shop", **options))  # type: ignore[arg-type]
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _failed_reloads(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('recfunnel_reloads_total{result="failed"}'):
            return float(line.split()[-1])
    return 0.0


# -- 1. an artifact cannot name code -------------------------------------------------------------
@pytest.mark.parametrize("model", ["this:s", "sys:exit", "os:getcwd"])
def test_a_rank_config_naming_a_module_is_refused_and_imports_nothing(serve, root: Path, model: str,
                                                                      capsys: pytest.CaptureFixture[str]):
    client = serve()
    evil = Path(shutil.copytree(root / "shop", root / "evil"))
    config = json.loads((evil / "rank" / "config.json").read_text())
    (evil / "rank" / "config.json").write_text(json.dumps({**config, "model": model}))
    before = _ids(client.get("/recommend", params={"user_id": "u3", "k": 5}))
    response = client.post("/reload", json={"path": "evil"})
    assert response.status_code == 400, response.text
    assert f"field 'model' is {model!r}, which is not a registered model" in response.json()["detail"]
    assert _failed_reloads(client) == 1.0
    assert "Beautiful is better than ugly" not in capsys.readouterr().out  # `this` was never imported
    assert _ids(client.get("/recommend", params={"user_id": "u3", "k": 5})) == before


# -- 2. reloads only from the artifacts root -----------------------------------------------------
def test_paths_outside_the_root_are_refused_alike_and_nothing_is_listed(serve, root: Path, tmp_path: Path):
    client = serve()
    outside = tmp_path / "outside"
    (outside / "secret-entry.txt").parent.mkdir()
    (outside / "secret-entry.txt").write_text("x")
    answers = {}
    for path in (str(outside), str(tmp_path / "does-not-exist"), "/root", "/", "../outside", str(root / ".." / "outside")):
        response = client.post("/reload", json={"path": path})
        assert response.status_code == 403, (path, response.text)
        answers[path] = response.json()["detail"].replace(repr(path), "PATH")
        assert "secret-entry" not in response.text
    assert len(set(answers.values())) == 1, answers  # existing or not, the same answer
    assert _failed_reloads(client) == len(answers)
    assert client.get("/health").json()["artifact"] == "shop"


def test_symlinks_leading_out_of_the_root_are_refused(serve, root: Path, tmp_path: Path):
    client = serve()
    elsewhere = Path(shutil.copytree(root / "shop", tmp_path / "elsewhere"))
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    assert client.post("/reload", json={"path": "link"}).status_code == 403
    inner = Path(shutil.copytree(root / "shop", root / "inner"))
    (inner / "items.parquet").unlink()
    (inner / "items.parquet").symlink_to(elsewhere / "items.parquet")
    assert client.post("/reload", json={"path": "inner"}).status_code == 403
    (root / "inside-link").symlink_to(root / "shop", target_is_directory=True)  # a link within the root is fine
    assert client.post("/reload", json={"path": "inside-link"}).status_code == 200


def test_relative_paths_are_under_the_root_and_a_missing_one_is_404(serve, root: Path):
    client = serve()
    shutil.copytree(root / "shop", root / "v2")
    body = client.post("/reload", json={"path": "v2"}).json()
    assert body["artifact"] == "v2" and client.get("/health").json()["artifact"] == "v2"
    missing = client.post("/reload", json={"path": "v3"})
    assert missing.status_code == 404 and missing.json()["detail"] == \
        "ArtifactError: no artifact at 'v3' under the artifacts root."
    assert client.post("/reload", json={}).json()["artifact"] == "v2"  # {} reloads the served one


@pytest.mark.parametrize(("content", "headers"), [
    ("path=%2Froot", {"content-type": "application/x-www-form-urlencoded"}),
    ('{"path": "shop"}', {"content-type": "text/plain"}),
    ('{"path": "shop"}', {}),
    ("", {}),
])
def test_reload_takes_json_only_so_no_simple_cross_site_request_reaches_it(serve, content: str, headers: dict):
    client = serve()
    response = client.post("/reload", content=content, headers=headers)
    assert response.status_code == 415, response.text
    assert "needs the header 'Content-Type: application/json'" in response.json()["detail"]
    assert client.post("/reload", content='{"path": "shop"}',
                       headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_reload_needs_the_api_key_before_anything_else(serve):
    client = serve(api_key="s3cret")
    assert client.post("/reload", json={"path": "/root"}).status_code == 401
    assert client.post("/reload", content="path=/", headers={"content-type": "text/plain"}).status_code == 401
    assert client.post("/reload", json={}, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_the_served_artifact_must_be_inside_the_root(root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="artifacts root .* is not a directory; pass --artifacts-root DIR"):
        create_app(root / "shop", events=tmp_path / "e.sqlite", artifacts_root=tmp_path / "events-only")
    (tmp_path / "events-only").mkdir()
    with pytest.raises(ConfigError, match="is not inside the artifacts root"):
        create_app(root / "shop", events=tmp_path / "e.sqlite", artifacts_root=tmp_path / "events-only")


# -- 3. items: known attributes only, bounded ----------------------------------------------------
def test_unknown_item_attributes_are_refused_naming_them(serve, tmp_path: Path):
    client = serve()
    columns = list(client.app.state.holder.current.funnel.catalogue.table.columns)
    flood = [{"item_id": f"flood-{i}", **{f"a{i}_{j}": j for j in range(64)}} for i in range(400)]
    response = client.post("/items", json={"items": flood})
    assert response.status_code == 422, response.text
    assert "unknown item attributes 'a0_0', 'a0_1'" in response.json()["detail"]
    assert "(and 25590 more)" in response.json()["detail"]
    one = client.post("/items", json={"items": [{"item_id": "n1", "category": "toys", "colour": "red"}]})
    assert one.status_code == 422 and "unknown item attributes 'colour'" in one.json()["detail"]
    assert list(client.app.state.holder.current.funnel.catalogue.table.columns) == columns
    assert client.app.state.store.items() == []  # nothing stored either


def test_configured_attributes_are_accepted(serve):
    client = serve(items=ItemLimits(attributes=("colour",)))
    assert client.post("/items", json={"items": [{"item_id": "n1", "colour": "red"}]}).json() == \
        {"added": 1, "updated": 0}
    assert "colour" in client.app.state.holder.current.funnel.catalogue.table.columns
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ItemIn"]
    assert schema["additionalProperties"] is False and "colour" in schema["properties"]


def test_items_per_request_and_catalogue_growth_are_bounded(serve):
    client = serve(items=ItemLimits(max_per_request=2, max_new=3))
    too_many = client.post("/items", json={"items": [{"item_id": f"n{i}"} for i in range(3)]})
    assert too_many.status_code == 422 and "at most 2 items per request; got 3" in too_many.json()["detail"]
    for batch in (["n1", "n2"], ["n3"]):
        assert client.post("/items", json={"items": [{"item_id": i} for i in batch]}).status_code == 200
    full = client.post("/items", json={"items": [{"item_id": "n4"}]})
    assert full.status_code == 409, full.text
    assert "the catalogue is full: 3 items were added while serving" in full.json()["detail"]
    assert client.post("/items", json={"items": [{"item_id": "n1", "category": "toys"}]}).json() == \
        {"added": 0, "updated": 1}  # updates never grow it


def test_stored_items_with_unknown_attributes_lose_them_at_start_up(shop, root: Path, tmp_path: Path):
    events = tmp_path / "old.sqlite"
    with EventStore(events) as store:  # what an older server stored: 64 made-up attributes
        store.put_items([{"item_id": "old-1", "category": "toys", **{f"junk{j}": j for j in range(64)}}])
    app = create_app(root / "shop", events=events)
    catalogue = app.state.holder.current.funnel.catalogue
    assert catalogue.index(["old-1"])[0] >= 0
    assert not [c for c in catalogue.table.columns if c.startswith("junk")]
    app.state.store.close()


def test_adding_items_never_makes_a_recommendation_wait(serve, monkeypatch: pytest.MonkeyPatch):
    from recfunnel.funnel.catalogue import Catalogue

    client = serve()
    entered, release = threading.Event(), threading.Event()
    upsert = Catalogue.upsert

    def slow_upsert(self, rows):  # the add holds here until the recommendation below is answered
        entered.set()
        assert release.wait(30)
        return upsert(self, rows)

    monkeypatch.setattr(Catalogue, "upsert", slow_upsert)
    adding = threading.Thread(target=lambda: client.post("/items", json={"items": [{"item_id": "slow-1"}]}))
    adding.start()
    try:
        assert entered.wait(30)
        answered = _ids(client.get("/recommend", params={"user_id": "u1", "k": 5}))
        assert len(answered) == 5 and adding.is_alive()  # answered while the add was still running
    finally:
        release.set()
        adding.join(30)
    assert client.app.state.holder.current.funnel.catalogue.index(["slow-1"])[0] >= 0


# -- 4. a numerically broken funnel is not swapped in --------------------------------------------
def test_a_funnel_with_nan_weights_is_refused(serve, root: Path):
    from safetensors.torch import load_file, save_file

    client = serve()
    before = _ids(client.get("/recommend", params={"user_id": "u3", "k": 5}))
    nan = Path(shutil.copytree(root / "shop", root / "nan"))
    weights = nan / "rank" / "model.safetensors"
    save_file({k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in load_file(str(weights)).items()},
              str(weights), metadata={"format": "recfunnel-artifact/1"})
    response = client.post("/reload", json={"path": "nan"})
    assert response.status_code == 400 and "holds non-finite weights" in response.json()["detail"]
    assert _ids(client.get("/recommend", params={"user_id": "u3", "k": 5})) == before
    assert client.get("/health").json()["artifact"] == "shop"


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_the_probe_refuses_non_finite_scores_and_empty_lists(serve, monkeypatch: pytest.MonkeyPatch):
    import numpy as np

    from recfunnel.funnel.funnel import Recommendation
    from recfunnel.funnel.rank import Rank

    client = serve()
    funnel = client.app.state.holder.current.funnel
    outputs = Rank.outputs
    monkeypatch.setattr(Rank, "outputs", lambda self, *a, **k: np.full_like(outputs(self, *a, **k), np.nan))
    with pytest.raises(ArtifactError, match="'x' failed the serving probe: user 'u.*' got a score of nan"):
        probe(funnel, "'x'")
    response = client.post("/reload", json={})
    assert response.status_code == 400 and "failed the serving probe" in response.json()["detail"]
    monkeypatch.setattr(Rank, "outputs", outputs)
    monkeypatch.setattr(type(funnel), "recommend_many", lambda self, users, *a, **k: [
        Recommendation(user, [], [], []) for user in users])
    with pytest.raises(ArtifactError, match="failed the serving probe: the list for user .* is empty"):
        probe(funnel, "'x'")


# -- 5. integers beyond what JSON carries ---------------------------------------------------------
@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 2**53, 1e300])
def test_huge_numbers_in_context_are_422(serve, value: float):
    client = serve()
    response = client.get("/recommend", params={"user_id": "u1", "context": json.dumps({"hour": value})})
    assert response.status_code == 422, response.text
    assert "context value 'hour' must be a finite number within ±9007199254740991" in response.json()["detail"]
    assert client.get("/recommend", params={"user_id": "u1", "context": json.dumps({"hour": 2**53 - 1})}
                      ).status_code == 200


# -- 6. events for unknown items stay out of histories --------------------------------------------
def test_events_for_items_the_catalogue_lacks_are_kept_counted_and_unused(serve, shop):
    client = serve()
    before = _ids(client.get("/recommend", params={"user_id": "u7", "k": 10}))
    known = str(shop.items["item_id"].iloc[0])
    body = {"events": [{"user_id": "u7", "item_id": item, "type": "click"} for item in ("no-such-1", "no-such-2")]}
    assert client.post("/events", json=body).json() == {"accepted": 2, "unknown_items": 2}
    assert _ids(client.get("/recommend", params={"user_id": "u7", "k": 10})) == before
    store = client.app.state.store
    assert store.recent("u7") == [] and store.count() == 2
    assert "recfunnel_events_unknown_items_total 2.0" in client.get("/metrics").text
    client.post("/events", json={"events": [{"user_id": "u7", "item_id": known, "type": "click"}]})
    assert store.recent("u7") == [known]


# -- 9. hosts and keys -----------------------------------------------------------------------------
def test_allowed_hosts(serve):
    client = serve(allowed_hosts=["shop.example", "*.cdn.example"])
    for host, status in (("shop.example", 200), ("shop.example:8000", 200), ("a.cdn.example", 200),
                         ("evil.example", 400), ("shop.example.evil", 400), ("cdn.example", 400)):
        assert client.get("/health", headers={"host": host}).status_code == status, host
    assert "not served here" in client.get("/health", headers={"host": "evil.example"}).json()["detail"]


@pytest.mark.parametrize("key", [None, "s3cret"])
def test_two_api_key_headers_are_400(serve, key: str | None):
    client = serve(api_key=key)
    response = client.get("/users", headers=[("X-API-Key", "s3cret"), ("X-API-Key", "other")])
    assert response.status_code == 400 and response.json()["detail"] == "2 X-API-Key headers; send exactly one."


# -- 8. the OpenAPI document says what the server does ---------------------------------------------
def test_openapi_declares_the_key_only_when_one_is_required(serve):
    free = serve().app.openapi()
    assert "securitySchemes" not in free["components"]
    assert not [op for ops in free["paths"].values() for op in ops.values() if "security" in op]
    keyed = serve(api_key="k").app.openapi()
    assert "APIKeyHeader" in keyed["components"]["securitySchemes"]
    assert keyed["paths"]["/users"]["get"]["security"] and "401" in keyed["paths"]["/users"]["get"]["responses"]
    recommend = free["paths"]["/recommend"]["get"]
    context = next(p for p in recommend["parameters"] if p["name"] == "context")
    assert context["content"]["application/json"]["schema"]["type"] == "object"
    assert recommend["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Invalid")
    assert {"403", "404", "415"} <= set(free["paths"]["/reload"]["post"]["responses"])


def test_retention_prunes_old_events_when_the_server_starts(root: Path, tmp_path: Path):
    import time

    from recfunnel.serving import Event

    events = tmp_path / "kept.sqlite"
    with EventStore(events) as store:
        store.append([Event("u1", "old", "view", timestamp=1000.0), Event("u1", "recent", "view")])
    with TestClient(create_app(root / "shop", events=events, retention=3600.0)) as client:
        store = client.app.state.store
        deadline = time.monotonic() + 20
        while store.count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.item_id for e in store.events()] == ["recent"]
    with pytest.raises(ConfigError, match="retention must be a positive number of seconds; got 0"):
        create_app(root / "shop", events=events, retention=0)


def test_filter_values_and_the_context_string_are_bounded(serve):
    client = serve()
    long_value = client.get("/recommend", params={"user_id": "u1", "exclude": "x" * 257})
    assert long_value.status_code == 422 and "at most 256 characters" in long_value.text
    huge = json.dumps({"note": "y" * 9_000, "more": "z" * 9_000})  # each value fits, the whole does not
    assert client.get("/recommend", params={"user_id": "u1", "context": huge}).status_code == 422
