"""The stall-tolerance benchmark's summary of its trials."""
import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks', 'stall_tolerance.py')
SPEC = importlib.util.spec_from_file_location('stall_tolerance_benchmark', SCRIPT)
stall_tolerance = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stall_tolerance)


def trial(stall, failed_over, seen_after=None):
    return {'stall': stall, 'run': 1, 'target': 'pg1', 'frozen_outer': stall + 0.2, 'failed_over': failed_over,
            'new_primary': 'pg2' if failed_over else None, 'seen_after': seen_after,
            'target_after': 'standby' if failed_over else 'primary'}


def test_summary_counts_failovers_per_stall_in_stall_order():
    trials = [trial(2.0, True, 1.5), trial(1.0, False), trial(2.0, False), trial(1.0, False)]
    assert list(stall_tolerance.summary(trials).items()) == [(1.0, (0, 2)), (2.0, (1, 2))]


def test_tolerated_stops_at_the_first_stall_that_ever_failed_over():
    # A failover at 1.5 s means 2 s is not "survived", even though its runs were.
    trials = [trial(1.0, False), trial(1.5, True, 2.0), trial(2.0, False)]
    assert stall_tolerance.tolerated(trials) == 1.0


def test_tolerated_is_none_when_the_shortest_stall_failed_over():
    assert stall_tolerance.tolerated([trial(1.0, True, 1.0), trial(2.0, True, 0.5)]) is None


def test_render_shows_counts_survived_stall_and_the_settings():
    results = {'pgpool': [{'label': 'no-retry', 'settings': {'pgpool_health_check_max_retries': 0},
                           'commit': 'abc1234', 'measured': '2026-12-06 09:00 UTC',
                           'trials': [trial(1.0, False), trial(2.0, True, 1.2), trial(2.0, True, 2.4)]}]}
    table = stall_tolerance.render(results)
    assert '| no-retry | `{"pgpool_health_check_max_retries": 0}` | abc1234 | 2026-12-06 09:00 UTC | 0 / 1 | 2 / 2 | 1 s | 1.2-2.4 | 0 / 3 |' in table


def test_a_primary_that_stopped_without_a_failover_is_counted_and_older_records_say_not_recorded():
    stopped = dict(trial(3.0, False), target_after=None)
    assert stall_tolerance.stopped_without_failover([trial(1.0, False), stopped]) == 1
    legacy = {key: value for key, value in trial(1.0, False).items() if key != 'target_after'}
    assert stall_tolerance.stopped_without_failover([legacy, stopped]) is None
