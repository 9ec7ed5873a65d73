"""The benchmarks' timing: fast calls in back-to-back blocks, slow calls alone, pairs alternately."""

from vanilla_flash.bench import timing


def test_timeit_times_fast_calls_in_blocks_and_slow_calls_alone(monkeypatch):
    calls = []

    def call():
        calls.append(1)

    monkeypatch.setattr(timing, "BLOCK_S", 0.0)  # blocks of one call
    assert timing.timeit(call, warmup=3, repeats=10) >= 0
    assert len(calls) == 3 + 10
    calls.clear()
    monkeypatch.setattr(timing, "BLOCK_S", 1.0)  # blocks as long as 100 calls allow
    timing.timeit(call, warmup=3, repeats=10)
    assert len(calls) == 3 + 10 * 100
    calls.clear()
    monkeypatch.setattr(timing, "SLOW_CALL_S", 0.0)  # every call counts as slow: 2 warm-up calls, 3 alone
    timing.timeit(call, warmup=3, repeats=10)
    assert len(calls) == 2 + 3


def test_paired_timing_alternates_the_two_calls(monkeypatch):
    order = []
    monkeypatch.setattr(timing, "BLOCK_S", 0.0)  # blocks of one call
    timing.paired_timeit(lambda: order.append("a"), lambda: order.append("b"), warmup=2, repeats=3)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
