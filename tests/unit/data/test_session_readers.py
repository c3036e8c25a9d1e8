"""YOOCHOOSE and DIGINETICA session logs: read in their raw formats, refused with a line number when broken."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from recfunnel import Retriever
from recfunnel.data import load_frame, read_diginetica, read_yoochoose
from recfunnel.errors import DataError

YOOCHOOSE = ("1,2014-04-07T10:51:09.277Z,214536502,0\n"
             "1,2014-04-07T10:54:09.868Z,214536500,S\n"
             "2,2014-04-06T08:00:00.000Z,214536502,2053\n")
DIGINETICA = ("sessionId;userId;itemId;timeframe;eventdate\n"
              "1;NA;81766;526309;2016-05-09\n"
              "1;NA;31331;1031018;2016-05-09\n"
              "2;278;32118;0;2016-05-10\n")


def test_yoochoose_clicks_are_sessions_items_and_seconds(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat.gz"
    path.write_bytes(gzip.compress(YOOCHOOSE.encode()))
    frame = read_yoochoose(path)
    assert frame.columns.tolist() == ["session_id", "item_id", "time", "category"]
    assert frame.session_id.tolist() == [1, 1, 2] and frame.item_id.tolist() == [214536502, 214536500, 214536502]
    assert frame.category.tolist() == ["0", "S", "2053"]
    assert frame.time[1] - frame.time[0] == pytest.approx(180.591)
    assert frame.time[0] == pytest.approx(pd.Timestamp("2014-04-07T10:51:09.277Z").timestamp())


def test_diginetica_views_add_the_offset_within_the_session(tmp_path):
    path = tmp_path / "train-item-views.csv"
    path.write_text(DIGINETICA)
    frame = read_diginetica(path)
    assert frame.columns.tolist() == ["session_id", "user_id", "item_id", "time"]
    assert frame.user_id.isna().tolist() == [True, True, False] and frame.user_id[2] == "278"
    assert frame.time[1] - frame.time[0] == pytest.approx(504.709)
    assert frame.time[2] == pytest.approx(pd.Timestamp("2016-05-10").timestamp())


@pytest.mark.parametrize(("reader", "text", "message"), [
    (read_yoochoose, YOOCHOOSE + "3,2014-04-07T10:51:09.277Z,12\n", "line 4 of .*expected 4 comma-separated fields"),
    (read_yoochoose, YOOCHOOSE.replace("2014-04-06T08", "yesterday"), "line 3 of .*timestamp 'yesterday"),
    (read_diginetica, DIGINETICA + "3;NA;abc;0;2016-05-10\n", "line 5 of .*must be integers"),
    (read_diginetica, DIGINETICA.replace("sessionId", "session"), "does not start with DIGINETICA's header"),
    (read_diginetica, DIGINETICA.split("\n")[0] + "\n", "has no rows"),
])
def test_broken_files_are_refused_with_the_line(tmp_path, reader, text, message):
    path = tmp_path / "log.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        reader(path)


def test_a_sequential_model_trains_on_sessions(tmp_path):
    # sessions walk 0 -> 1 -> ... -> 7 -> 0 from a random start; session ids play the users
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 8, 80)
    lines = [f"{s + 1},2014-04-07T10:{step:02d}:00.000Z,{(start + step) % 8 + 100},0"
             for s, start in enumerate(starts) for step in range(5)]
    (tmp_path / "clicks.dat").write_text("\n".join(lines) + "\n")
    frame = load_frame(tmp_path / "clicks.dat", fmt="yoochoose")
    retriever = Retriever("gru4rec", params={"embedding_dim": 16, "hidden_dim": 16, "dropout": 0.0},
                          trainer={"max_epochs": 60, "batch_size": 16, "lr": 0.01, "progress": False},
                          user_col="session_id", time_col="time").fit(frame)
    assert retriever.recommend(["a new session"], k=1, recent=[[103, 104]]).items[0].tolist() == [105]
