"""Artifact weights mapped from model.safetensors: the same tensors safetensors reads, held on a
private map of the file, so processes that load one artifact share its weights."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import recfunnel
from recfunnel import Ranker
from recfunnel.datasets import make_shop
from recfunnel.estimators.mapped import DTYPES, map_weights


@pytest.fixture(scope="module")
def ranker_dir(tmp_path_factory):
    frame = make_shop(num_users=60, num_items=30, num_impressions=800, seed=1).impressions[
        ["user_id", "item_id", "category", "price", "click"]]
    ranker = Ranker("deepfm", label="click", trainer={"max_epochs": 1, "progress": False}).fit(frame)
    return ranker.save(tmp_path_factory.mktemp("mapped") / "ranker")


def _mapped_regions(name: str) -> list[tuple[int, int]]:
    """The address ranges this process maps from files called ``name``."""
    regions = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].endswith(name):
            begin, end = (int(x, 16) for x in fields[0].split("-"))
            regions.append((begin, end))
    return regions


def test_mapped_tensors_are_the_tensors_safetensors_reads(tmp_path):
    tensors = {f"t_{code}": (torch.arange(12) % 3).to(dtype).reshape(3, 4) for code, dtype in DTYPES.items()}
    tensors |= {"scalar": torch.tensor(2.5), "empty": torch.ones(0, 3), "wide": torch.randn(5, 7, 2)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    mapped, read = map_weights(tmp_path / "w.safetensors"), load_file(str(tmp_path / "w.safetensors"))
    assert mapped is not None and sorted(mapped) == sorted(read)
    for name, tensor in read.items():
        assert mapped[name].dtype == tensor.dtype and mapped[name].shape == tensor.shape, name
        assert torch.equal(mapped[name], tensor), name


def test_a_tensor_off_its_alignment_is_copied_and_a_file_of_empty_tensors_is_left_to_reading(tmp_path):
    # written by hand: a float32 tensor starting at byte 1 of the data, which safetensors accepts
    header = json.dumps({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}).encode()
    header += b" " * (-len(header) % 8)
    data = bytes([7]) + struct.pack("<2f", 1.5, -2.0)
    (tmp_path / "odd.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    mapped = map_weights(tmp_path / "odd.safetensors")
    assert mapped is not None and mapped["a"].tolist() == [7] and mapped["b"].tolist() == [1.5, -2.0]
    save_file({"none": torch.ones(0)}, str(tmp_path / "empty.safetensors"))
    assert map_weights(tmp_path / "empty.safetensors") is None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_a_loaded_models_weights_lie_in_a_map_of_its_file(ranker_dir):
    model = recfunnel.load(ranker_dir).model_
    regions = _mapped_regions("/model.safetensors")
    assert regions
    tables = [p for p in model.parameters() if p.numel() >= 16]
    assert tables and all(any(b <= p.data_ptr() < e for b, e in regions) for p in tables)


def test_writing_to_loaded_weights_changes_neither_the_file_nor_another_load(ranker_dir):
    weights = ranker_dir / "model.safetensors"
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    first, second = recfunnel.load(ranker_dir).model_, recfunnel.load(ranker_dir).model_
    kept = {name: p.detach().clone() for name, p in second.named_parameters()}
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before
    for name, p in second.named_parameters():
        assert torch.equal(p, kept[name]), name
    assert all(p.requires_grad for p in first.parameters())  # still trainable parameters


@pytest.mark.parametrize("header", [b"[]", b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 400]}}',
                                    b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}',
                                    b'{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}',
                                    b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}', b"not json",
                                    b'{"a": {"dtype": "F32", "shape": [1000000000000000000000000000000, 0], '
                                    b'"data_offsets": [0, 0]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
                                    b"[" * 100_000])
def test_a_header_that_does_not_describe_the_bytes_is_refused(tmp_path, header):
    header += b" " * (-len(header) % 8)
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(ValueError):
        map_weights(tmp_path / "bad.safetensors")


def test_weights_of_another_dtype_than_the_model_are_refused_at_load(ranker_dir, tmp_path):
    import shutil

    from recfunnel.errors import ArtifactError

    copy = tmp_path / "half"
    shutil.copytree(ranker_dir, copy)
    weights = load_file(str(copy / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, str(copy / "model.safetensors"),
              metadata={"format": "recfunnel-artifact/1"})
    with pytest.raises(ArtifactError, match="is torch.float16 in the weights file, but the model needs torch.float32"):
        recfunnel.load(copy)
