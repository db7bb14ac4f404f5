"""``Faces``: validated on construction, immutable, indexable."""

import numpy as np
import pytest
from tests.conftest import make_faces

from facelens import Faces
from facelens.faces import box_iou


def test_shapes_are_validated_with_expected_and_actual() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\).*\(2, 3\)"):
        Faces(xyxy=np.zeros((2, 3)), score=[1, 1])
    with pytest.raises(ValueError, match=r"score must have shape \(1,\)"):
        Faces(xyxy=[[0, 0, 1, 1]], score=[1, 2])
    with pytest.raises(ValueError, match="x2 >= x1"):
        Faces(xyxy=[[5, 0, 1, 1]], score=[1])
    with pytest.raises(ValueError, match="landmarks"):
        Faces(xyxy=[[0, 0, 1, 1]], score=[1], landmarks=np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="finite"):
        Faces(xyxy=[[0, 0, np.nan, 1]], score=[1])


def test_arrays_are_read_only_and_copies_of_the_input() -> None:
    src = np.array([[0, 0, 10, 10]], np.float32)
    f = Faces(xyxy=src, score=[1])
    src[0, 0] = 5
    assert f.xyxy[0, 0] == 0
    with pytest.raises(ValueError):
        f.xyxy[0, 0] = 3
    with pytest.raises(AttributeError):
        f.score = np.zeros(1)  # type: ignore[misc]


def test_replace_returns_a_new_faces_and_leaves_the_old_one() -> None:
    f = make_faces(2)
    g = f.replace(track_id=[7, 8])
    assert f.track_id is None and g.track_id.tolist() == [7, 8]  # type: ignore[union-attr]


def test_indexing_keeps_every_field() -> None:
    f = make_faces(3, landmarks=True, track_id=np.array([1, 2, 3]))
    sub = f[np.array([False, True, True])]
    assert len(sub) == 2 and sub.track_id.tolist() == [2, 3]  # type: ignore[union-attr]
    assert sub.landmarks.shape == (2, 5, 2)  # type: ignore[union-attr]
    assert len(f[1]) == 1
    with pytest.raises(IndexError):
        f[3]


def test_empty_largest_clip_and_iou() -> None:
    assert len(Faces.empty()) == 0
    with pytest.raises(IndexError):
        Faces.empty().largest()
    f = Faces(xyxy=[[0, 0, 10, 10], [0, 0, 30, 30]], score=[1, 1])
    assert f.largest() == 1
    assert f.clip(20, 20).xyxy[1].tolist() == [0, 0, 20, 20]
    assert box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]]).tolist() == [[1.0, 0.0]]
