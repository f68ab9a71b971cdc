"""The comparison path end to end on the lab, kept short for CI.

Runs playbooks/compare.yml for one solution, two faults and one run each into a
temporary results directory (the committed report is left alone), then checks
what it measured and rendered. Needs the lab's host tools (make lab-image).
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLUTION = os.environ.get('PGHA_SMOKE_HA', 'streaming')
# A host crash (the old primary cannot be reached at all) and a partition (it
# still runs and is fenced): between them every step of the drill path.
FAULTS = os.environ.get('PGHA_SMOKE_FAULTS', 'host_crash,network_partition').split(',')
# streaming's fenced profile: its operator failover powers the crashed primary
# off through the lab's fence agent before it promotes (the default profile is
# the same failover without that step).
PROFILES = [p for p in os.environ.get('PGHA_SMOKE_PROFILES', 'fenced' if SOLUTION == 'streaming' else '').split(',') if p]


@pytest.fixture
def lab_teardown():
    yield
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), 'playbooks/lab.yml',
                    '-e', 'lab_state=absent'], cwd=REPO, capture_output=True, timeout=600, check=False)


def run_compare(tmp_path, **settings):
    """compare.yml with one run of each fault into tmp_path; returns its one result."""
    results = tmp_path / 'results'
    extra = dict(settings, compare_runs=1, compare_drill_duration=25, compare_results_dir=str(results),
                 compare_report=str(tmp_path / 'comparison.md'))
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), 'playbooks/compare.yml',
                          '-e', json.dumps(extra)], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]

    result_files = sorted(p for p in os.listdir(results) if p.endswith('.json') and not p.startswith('.'))
    assert result_files, 'compare.yml wrote no result'
    with open(results / result_files[0]) as handle:
        return json.load(handle)


def test_compare_drills_end_to_end(tmp_path, lab_teardown):
    result = run_compare(tmp_path, compare_ha=[SOLUTION], compare_faults=FAULTS,
                         **({'compare_profiles': PROFILES} if PROFILES else {}))
    report = tmp_path / 'comparison.md'
    assert result['ha'] == SOLUTION
    if PROFILES == ['fenced']:
        assert result['settings'].get('streaming_fence_agent') == 'fence_pgha_lab', result['settings']
    assert result['deploy']['rerun_changed'] == 0, 'the second deployment changed something'
    assert result['deploy']['cold_seconds'] > 0
    assert [d['fault'] for d in result['drills']] == FAULTS
    for drill in result['drills']:
        assert drill['error'] is None, drill['error']
        assert int(drill['acknowledged']) > 100
        assert int(drill['split_brain_count']) == 0
        assert drill['new_primary'] not in ('none', drill['primary_before'])
        assert int(drill['timeline_after']) > int(drill['timeline_before'])
        assert drill['rejoined'] in (True, 'True', 'true')

    text = report.read_text()
    for fault in FAULTS:
        assert '| %s |' % fault in text
    assert (tmp_path / 'comparison.png').is_file()


# The synchronous profile promises reads that miss no acknowledged write: its read
# port serves only the synchronous standby. A switchover is where the other replicas
# fall seconds behind while they follow the new leader.
SYNC_SOLUTION = os.environ.get('PGHA_SMOKE_SYNC_HA', 'patroni')
SYNC_FAULTS = os.environ.get('PGHA_SMOKE_SYNC_FAULTS', 'switchover').split(',')


def test_synchronous_profile_serves_no_stale_read(tmp_path, lab_teardown):
    result = run_compare(tmp_path, compare_ha=[SYNC_SOLUTION], compare_profiles=['synchronous'],
                         compare_faults=SYNC_FAULTS)
    assert result['profile'] == 'synchronous'
    assert [d['fault'] for d in result['drills']] == SYNC_FAULTS
    for drill in result['drills']:
        assert drill['error'] is None, drill['error']
        assert int(drill['lost_count']) == 0
        reads = drill['reads']
        assert int(reads['succeeded']) > 100, 'too few reads through the read endpoint to tell: %s' % reads
        assert int(drill['stale_reads']) == 0, '%s stale read(s) through the synchronous read endpoint: %s' % (
            drill['stale_reads'], reads)
