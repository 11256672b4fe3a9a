"""The MOT writer's files round-trip through the MOT readers and decode to the tracked masks."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.config.tracker import TrackerConfig
from pipeline.errors import ConfigError, DatasetError
from pipeline.items import FrameResult
from sinks.mot import MotWriter, safe_file_stem
from stages.tracker import TrackerStage
from tests.toyscene import ToyObject, ToyScene
from tracking.mot_io import read_mot, read_mots


def test_writes_mot_and_mots_files_that_read_back(tmp_path):
    scene = ToyScene([ToyObject((100, 100), (3, 0), (40, 60)), ToyObject((400, 200), (-2, 1), (50, 50), 3)])
    stage = TrackerStage(TrackerConfig(camera_motion="off"))
    writer = MotWriter(tmp_path / "mot")
    kept = {}
    for i in range(10):
        result = stage.track(FrameResult(scene.frame(i, "cam/1"), scene.detections(i)))
        writer.write(result)
        kept[i + 1] = result
    writer.end_source("cam/1")
    writer.close()

    box_path, mask_path = writer.paths("cam/1")
    assert box_path.name == "cam_1.txt" and mask_path.name == "cam_1_masks.txt"
    boxes = read_mot(box_path, class_column=None)
    masks = read_mots(mask_path)
    assert sorted(boxes) == list(range(2, 11))  # tracks are confirmed on their second observation
    for number, frame_objects in boxes.items():
        result = kept[number]
        assert sorted(frame_objects.ids.tolist()) == sorted(t.track_id for t in result.tracks)
        for track in result.tracks:
            row = frame_objects.boxes[frame_objects.ids.tolist().index(track.track_id)]
            assert row == pytest.approx(track.box, abs=0.01)
            mrow = masks[number].ids.tolist().index(track.track_id)
            assert masks[number].classes[mrow] == track.label
            decoded = mask_utils.decode({**masks[number].rles[mrow], "counts": masks[number].rles[mrow]["counts"]})
            assert np.array_equal(decoded.astype(bool), result.detections.full_mask(track.detection_index))


def test_safe_file_stem():
    assert safe_file_stem("rtsp cam #2") == "rtsp_cam_2"
    assert safe_file_stem("../x") == "x"
    assert safe_file_stem("..") == "source"


def test_unwritable_directory_is_a_one_line_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create MOT output directory"):
        MotWriter(blocker / "sub")


def test_bad_mot_rows_name_the_file_and_line(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,10,5,5,1,1,1\n2,x,1,1,1,1\n")
    with pytest.raises(DatasetError, match=r"gt.txt:2"):
        read_mot(path)
