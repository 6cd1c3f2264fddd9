"""Replay gives the worker's answer: the demo scenario replayed as one file per stream and as many files
ends where one worker on the real broker ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import settle
from workers import HotpathProcess, final_states, publish_scenario

from stream.correlate.replay import replay
from stream.demo.scenario import build_scenario

pytestmark = pytest.mark.kafka
PARTS = 7


def split(paths: list[Path], folder: Path) -> list[Path]:
    """The lines of NDJSON files spread over PARTS files, each part's lines still in order."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for path in paths for line in path.read_bytes().splitlines(keepends=True)]
    parts = [folder / f"part-{index}.ndjson" for index in range(PARTS)]
    for index, part in enumerate(parts):
        part.write_bytes(b"".join(lines[index::PARTS]))
    return parts


def test_replay_of_one_file_or_many_per_stream_equals_one_worker(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6, encoding="otlp_json")
    publish_scenario(settings, scenario)
    with HotpathProcess("worker", settings, tmp_path, name="single"):
        worker = final_states(settle(settings, scenario.expected.escalated))

    whole = scenario.write_files(tmp_path / "whole")
    assert all(len(paths) == 1 for paths in whole.values())
    many = {stream: split(paths, tmp_path / "many" / stream) for stream, paths in whole.items() if stream != "assets"}
    one_file = final_states(list(replay(settings, **whole)))
    many_files = final_states(list(replay(settings, assets=whole["assets"], **many)))

    assert worker == {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
    assert one_file == many_files == worker
