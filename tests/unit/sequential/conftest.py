"""The sequential models' small log: user 1 takes 6, 7, 8, 5 in time order, user 2 takes 6, 9, user 3 takes 5."""

import pandas as pd
import pytest

from recfunnel.data.interactions import Interactions


@pytest.fixture(scope="module")
def data():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2, 3], "item_id": [5, 6, 7, 8, 6, 9, 5],
                          "ts": [4, 1, 2, 3, 0, 1, 0]})
    return Interactions.from_frame(frame, time_col="ts")
