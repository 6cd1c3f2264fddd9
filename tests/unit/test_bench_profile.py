"""``make profile`` (bench/profile.py): a worker's samples are put in the stage a reader of the table expects,
and its CPU time is split by them without counting a thread's waits as work."""

from __future__ import annotations

import sys

from paths import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is beside the package, as `python -m bench.profile` finds it
from bench.profile import (  # noqa: E402
    CONSUMER_THREAD,
    FEED_THREAD,
    LOOP_IDLE,
    NATIVE_THREADS,
    OTHER,
    cpu_seconds,
    samples,
    stage,
    wall_shares,
)

SITE = "/venv/lib/python3.11/site-packages"
LOOP_ROOT = (f"run_forever (/py/asyncio/base_events.py:607);_run_once (/py/asyncio/base_events.py:1922);"
             f"_execute_actor ({SITE}/faust/agents/agent.py:698)")
RAW = [
    # the event loop decoding: protobuf under the OTLP decoder under the agent under Faust
    f"thread (11): MainThread;{LOOP_ROOT};ingest_traces (/repo/stream/worker/agents.py:96);"
    f"decode (/repo/stream/ingest/formats/otlp.py:80);FromString ({SITE}/google/protobuf/message.py:1) 6",
    # the agent sending an entity-events record: Faust's producer is plumbing, whoever called it
    f"thread (11): MainThread;{LOOP_ROOT};_send_routed (/repo/stream/worker/agents.py:131);"
    f"send ({SITE}/faust/topics.py:190);send ({SITE}/aiokafka/producer/producer.py:494) 2",
    f"thread (11): MainThread;{LOOP_ROOT};traces (/repo/stream/ingest/router.py:67) 1",
    "thread (11): MainThread;run_forever (/py/asyncio/base_events.py:607);select (/py/selectors.py:468) 1",
    f"thread (12): Thread-1;run ({SITE}/mode/threads.py:62);lz4_decode ({SITE}/aiokafka/codec.py:185) 3",
    "thread (13): hotpath-context;_run (/repo/stream/worker/topicfeed.py:58);"
    "batches (/repo/stream/kafka/wholetopic.py:52) 4",
    "thread (14): asyncio_0;_worker (/py/concurrent/futures/thread.py:81) 1",
    # a thread py-spy saw ending: its name could no longer be read
    "thread (15);_worker (/py/concurrent/futures/thread.py:81) 2",
]


def test_each_sample_is_in_the_stage_of_its_thread_and_innermost_known_frame():
    stages = [stage(sample) for sample in samples(RAW)]
    assert stages == ["OTLP decode", "Faust/aiokafka plumbing", "routing, resolution, entity-event encoding",
                      LOOP_IDLE, CONSUMER_THREAD, FEED_THREAD, OTHER, OTHER]


def test_wall_shares_are_the_event_loop_threads_samples_waiting_included():
    shares = wall_shares(samples(RAW))
    assert shares["OTLP decode"] == 0.6 and shares[LOOP_IDLE] == 0.1  # 6 and 1 of the loop's 10 samples
    assert shares[CONSUMER_THREAD] == shares[FEED_THREAD] == 0.0  # other threads do not hold up the loop
    assert abs(sum(shares.values()) - 1.0) < 1e-9


def test_a_thread_without_a_name_is_still_read():
    (unnamed,) = samples(["thread (15);_worker (/py/concurrent/futures/thread.py:81) 2"])
    assert (unnamed.thread_id, unnamed.thread_name, unnamed.count) == (15, "", 2)


def test_cpu_time_is_each_threads_own_split_by_its_samples_and_unsampled_threads_are_native():
    # /proc says the feed thread spent nothing (its samples were a wait in librdkafka), and thread 99,
    # which py-spy never saw, is one of librdkafka's
    seconds = cpu_seconds(samples(RAW), {11: 5.0, 12: 1.5, 13: 0.0, 99: 0.25})
    assert seconds["OTLP decode"] == 3.0 and seconds["Faust/aiokafka plumbing"] == 1.0
    assert seconds[CONSUMER_THREAD] == 1.5 and seconds[FEED_THREAD] == 0.0 and seconds[NATIVE_THREADS] == 0.25
    assert abs(sum(seconds.values()) - 6.75) < 1e-9
