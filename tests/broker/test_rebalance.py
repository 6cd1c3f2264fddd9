"""A group of workers rebalanced again and again under load (issue 16, point 6): workers join, stop cleanly
(SIGTERM) and crash (SIGKILL) while findings, traces and alerts keep flowing. Afterwards every entity event
on ``hotpath.entity-events`` is correlated, which the group's committed offsets reaching the end of every
partition show (a stalled partition keeps its offset short of the end for ever), and a subscriber of
``hotpath.escalations`` ends up with the end state of an undisturbed run, without a lost version.

How long each rebalance took to spread the partitions again is printed (``pytest -rP``); nothing asserts on speed.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from waiting import partitions_of, settle, wait_committed_to_end, wait_until
from workers import HotpathProcess, Player, final_states, owned_partitions, scenario_records

from stream.demo.scenario import build_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.rebalance]

PLAY_S = 40.0  # the scenario's records are spread over this long, so each change of the group lands mid-stream


@pytest.fixture(scope="module")
def scenario():
    # One record per trace, as the Collector's exporter writes with partition_traces_by_id: ~800 records.
    return build_scenario(seed=11, scale=1, minutes=6, partition_traces_by_id=True)


def assert_no_version_lost(events: list[dict]) -> None:
    """Per finding, every version from 1 to the last was published (a crash may publish one twice)."""
    versions: dict[str, set[int]] = defaultdict(set)
    for event in events:
        versions[event["finding_uid"]].add(event["version"])
    for uid, seen in versions.items():
        assert seen == set(range(1, max(seen) + 1)), f"{uid}: versions {sorted(seen)}"


class Group:
    """The workers of one consumer group, started and stopped by name; each change waits until the running
    workers own every entity partition once between them, a worker that joined some of them."""

    def __init__(self, settings, tmp_path) -> None:
        self.settings, self.tmp_path = settings, tmp_path
        self.workers: dict[str, HotpathProcess] = {}
        self.spread_s: list[tuple[str, float]] = []
        self.partitions = partitions_of(settings, settings.topic_entity_events)

    def join(self, name: str) -> None:
        worker = self.workers.get(name) or HotpathProcess("worker", self.settings, self.tmp_path, name=name)
        self.workers[name] = worker.start()
        self._spread(f"{name} joins", joined=worker)

    def leave(self, name: str, crash: bool = False) -> None:
        worker = self.workers[name]
        if crash:
            worker.kill()
        else:
            assert worker.stop() == 0, f"{name} did not stop cleanly:\n{worker.log_tail()}"
        self._spread(f"{name} {'crashes' if crash else 'stops'}")

    def running(self) -> list[HotpathProcess]:
        return [w for w in self.workers.values() if w.proc is not None and w.proc.poll() is None]

    def _spread(self, change: str, joined: HotpathProcess | None = None) -> None:
        def spread() -> bool:
            owned = [owned_partitions(w) for w in self.running()]
            if any(partitions is None for partitions in owned) or (joined and not owned_partitions(joined)):
                return False
            return sorted(p for partitions in owned for p in partitions) == self.partitions

        self.spread_s.append((change, wait_until(spread, f"the partitions are owned once each after {change}")))

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def test_repeated_rebalances_under_load_correlate_every_entity_event(hotpath_settings, scenario, tmp_path):
    settings = hotpath_settings
    player = Player(settings, scenario_records(settings, scenario), PLAY_S)
    group = Group(settings, tmp_path)
    try:
        group.join("a")
        group.join("b")
        player.start()
        # At most two at once: Faust may leave a third worker of four partitions none, and wait for nothing.
        for share, change in ((0.15, lambda: group.leave("a")),
                              (0.3, lambda: group.join("c")),
                              (0.45, lambda: group.leave("b", crash=True)),
                              (0.6, lambda: group.join("a")),
                              (0.75, lambda: group.leave("c")),
                              (0.85, lambda: group.join("b"))):
            player.wait_for_share(share)
            change()
        player.finish()
        # The inputs are committed to their end once every entity event they make is on its topic; then
        # the correlate agent must commit every one of those.
        for topic in (settings.topic_findings, settings.topic_traces, settings.topic_alerts, settings.topic_assets):
            wait_committed_to_end(settings, settings.app_id, topic)
        started = time.monotonic()
        wait_committed_to_end(settings, settings.app_id, settings.topic_entity_events)
        print(f"entity events committed {time.monotonic() - started:.1f}s after the input")
        events = settle(settings, scenario.expected.escalated)
        assert final_states(events) == {uid: ("escalated", p) for uid, p in scenario.expected.escalated.items()}
        assert_no_version_lost(events)
    except AssertionError:
        for worker in group.workers.values():
            print(f"--- {worker.name}\n{worker.log_tail(120)}")
        raise
    finally:
        print("rebalances: " + ", ".join(f"{change} {seconds:.1f}s" for change, seconds in group.spread_s))
        group.stop_all()
