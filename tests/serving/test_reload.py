"""Hot reload: no request fails while artifacts are swapped, and a bad artifact changes nothing."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


def _copy(shop, tmp_path: Path, name: str = "copy") -> Path:
    """A copy of the served funnel inside the server's artifacts root (the shop's parent folder)."""
    return Path(shutil.copytree(shop.artifact, shop.artifact.parent / f"{name}-{tmp_path.name}"))


def test_no_request_fails_while_reloading(client: TestClient, shop, tmp_path: Path):
    copy = _copy(shop, tmp_path)
    statuses: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def hammer(worker: int) -> None:
        n = 0
        while not done.is_set() or n < 3:
            try:
                response = client.get("/recommend", params={"user_id": f"u{(worker * 7 + n) % 60}", "k": 5})
                statuses.append(response.status_code)
                assert len(response.json()["items"]) == 5
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
            n += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            target = copy if round_ % 2 == 0 else shop.artifact
            response = client.post("/reload", json={"path": str(target)})
            assert response.status_code == 200, response.text
            assert response.json()["artifact"] == target.name
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures[:3]
    assert len(statuses) >= 12 and set(statuses) == {200}
    assert client.get("/health").json()["artifact"] == shop.artifact.name


@pytest.mark.parametrize("damage", ["config", "nested", "weights", "items"])
def test_a_corrupt_artifact_is_refused_and_the_old_one_keeps_serving(client: TestClient, shop, tmp_path: Path,
                                                                     damage: str):
    bad = _copy(shop, tmp_path, "bad")
    if damage == "config":
        (bad / "config.json").write_text('{"format": "recfunnel-funnel/1", "recall": [')
    elif damage == "nested":  # past the parser's stack
        (bad / "rank" / "schema.json").write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "weights":
        weights = next(bad.rglob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        (bad / "items.parquet").write_bytes(b"PAR1 not really")
    before = client.get("/recommend", params={"user_id": "u3", "k": 5}).json()["items"]
    response = client.post("/reload", json={"path": str(bad)})
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("ArtifactError: ")
    assert bad.name in response.json()["detail"]
    after = client.get("/recommend", params={"user_id": "u3", "k": 5}).json()["items"]
    assert [i["item_id"] for i in after] == [i["item_id"] for i in before]
    assert client.get("/health").json()["artifact"] == shop.artifact.name
    assert 'recfunnel_reloads_total{result="failed"} 1.0' in client.get("/metrics").text
