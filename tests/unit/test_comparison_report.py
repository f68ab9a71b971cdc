"""The report renderer summarises exactly what the results say."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLUTIONS = os.path.join(REPO, 'playbooks', 'vars', 'solutions')
sys.path.insert(0, os.path.join(REPO, 'tools'))

import comparison_report  # noqa: E402


def render_report(tmp_path, results, solutions=SOLUTIONS):
    """Run the report tool as compare.yml does; the Markdown it wrote."""
    output = tmp_path / 'comparison.md'
    subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'comparison_report.py'), '--results', str(results),
                    '--solutions', str(solutions), '--output', str(output)], check=True)
    return output.read_text()


def drill(fault, gap, lost=0, split=0, rejoin=3.0):
    return {'fault': fault, 'max_gap': gap, 'fault_to_first_write': gap + 0.1, 'lost_count': lost,
            'acknowledged': 100, 'split_brain_count': split, 'rejoin_seconds': rejoin, 'rejoined': True,
            'rejoin_method': 'rewind'}


def test_summary_median_worst_and_totals():
    rows = comparison_report.summarise({'drills': [drill('switchover', 1.0), drill('host_crash', 8.0, lost=1),
                                                   drill('host_crash', 6.0), drill('host_crash', 30.0, split=2)]})
    assert [r['fault'] for r in rows] == ['host_crash', 'switchover']
    crash = rows[0]
    assert crash['runs'] == 3
    assert crash['rto_median'] == 8.0
    assert crash['rto_worst'] == 30.0
    assert crash['lost'] == 1
    assert crash['split_brain'] == 2
    assert crash['acknowledged'] == 300


def test_a_drill_without_a_write_after_the_fault_counts_its_outage_to_the_end_of_the_probe():
    """The probe's max_gap is then an earlier, tiny gap: reporting it would turn a cluster that
    never took writes again into the fastest row of the table."""
    stuck = dict(drill('host_freeze', 0.15), fault_to_first_write=None, trailing_gap=46.08)
    rows = comparison_report.summarise({'drills': [stuck, drill('host_freeze', 9.0)]})
    assert rows[0]['rto_worst'] == 46.08
    assert rows[0]['unrecovered'] == 1
    # A drill that wrote again after the fault keeps its measured gap, whatever its trailing gap.
    fine = dict(drill('host_crash', 7.0), trailing_gap=0.01)
    assert comparison_report.summarise({'drills': [fine]})[0]['rto_worst'] == 7.0
    assert comparison_report.summarise({'drills': [fine]})[0]['unrecovered'] == 0


def test_an_old_primary_back_as_a_primary_counts_as_split_brain():
    frozen = [dict(drill('host_freeze', 9.0), restored_primary_seconds=31.2, split_brain_after_restore=True),
              dict(drill('host_freeze', 7.0), restored_primary_seconds=0, split_brain_after_restore=False),
              dict(drill('host_crash', 7.0), restored_primary_seconds=None)]
    rows = {r['fault']: r for r in comparison_report.summarise({'drills': frozen})}
    assert rows['host_freeze']['split_brain'] == 1
    assert rows['host_freeze']['restored_primary_worst'] == 31.2
    assert rows['host_crash']['restored_primary_worst'] is None
    assert list(rows) == ['host_crash', 'host_freeze'], 'report order of faults/classes.yml'


def test_an_old_primary_that_nobody_replaced_is_not_timed_as_still_primary():
    """A freeze that no node failed over from leaves the old primary the primary, rightly."""
    no_failover = dict(drill('host_freeze', 23.0), restored_primary_seconds=30.3, promoted_elsewhere=False)
    replaced = dict(drill('host_freeze', 13.0), restored_primary_seconds=0, promoted_elsewhere=True)
    rows = comparison_report.summarise({'drills': [no_failover, replaced]})
    assert rows[0]['restored_primary_worst'] == 0
    assert comparison_report.summarise({'drills': [no_failover]})[0]['restored_primary_worst'] is None


def test_a_primary_cut_off_from_its_coordination_is_timed_until_it_stops_taking_writes():
    cut = [dict(drill('dcs_partition', 12.0), old_primary_writable_seconds=v, old_primary_writable_at_end=end)
           for v, end in ((6.1, False), (9.4, False), (2.0, False))]
    rows = {r['fault']: r for r in comparison_report.summarise({'drills': cut + [drill('host_crash', 7.0)]})}
    assert rows['dcs_partition']['fenced_worst'] == 9.4
    assert rows['dcs_partition']['never_fenced'] == 0
    assert rows['host_crash']['fenced_worst'] is None
    never = [dict(drill('dcs_partition', 0.1), old_primary_writable_seconds=60.0, old_primary_writable_at_end=True)]
    assert comparison_report.summarise({'drills': never})[0]['never_fenced'] == 1


def group(profile, drills, replicas=2):
    """A measured solution and profile, as build_context hands it to score()."""
    rows = comparison_report.summarise({'drills': drills})
    return {'profile': profile, 'rows': rows, 'by_fault': {r['fault']: r for r in rows}, 'deploy': {'replicas': replicas}}


AUTOMATIC = {'automatic_failover': True, 'license': 'MIT', 'open_source': True, 'distribution_packages': True,
             'redundancy': 'x', 'monitoring': 'patronictl list', 'status_command': True,
             'defaults_profile': 'tuned', 'no_loss_profiles': ['synchronous']}


def test_monitoring_is_scored_with_the_time_its_status_showed_the_new_primary():
    crash = [dict(drill('host_crash', 9.0), monitor={'new_primary_shown': v}) for v in (7.5, 8.5, None)]
    scored = comparison_report.score(AUTOMATIC, [group('tuned', crash)])['monitoring']
    assert scored == {'score': 5, 'evidence': 'patronictl list; its status named the new primary 8.0 s after a host crash (median)'}
    slow = [dict(drill('host_crash', 9.0), monitor={'new_primary_shown': 25.0})]
    assert comparison_report.score(AUTOMATIC, [group('tuned', slow)])['monitoring']['score'] == 3
    # A status command whose timing was never measured is not scored (not scored low either).
    unmeasured = comparison_report.score(AUTOMATIC, [group('tuned', [drill('host_crash', 9.0)])])
    assert unmeasured['monitoring']['score'] is None
    assert 'not measured' in unmeasured['monitoring']['evidence']
    # No status tool of its own: the lowest score, measured or not.
    sql_only = dict(AUTOMATIC, status_command=False)
    assert comparison_report.score(sql_only, [group('tuned', crash)])['monitoring']['score'] == 1


def test_manual_failover_is_not_scored_as_automatic():
    facts = {'streaming': dict(AUTOMATIC, automatic_failover=False, defaults_profile='default')}
    scored = comparison_report.score(facts['streaming'], [group('default', [drill('host_crash', 2.0)])])
    assert scored['failover']['score'] == 1
    assert scored['failover']['evidence'].startswith('manual only')
    assert '2 streaming replica' in scored['redundancy']['evidence']


@pytest.mark.parametrize('gaps, expected', [
    ((5.0, 6.0, 9.9), 5),     # median 6.0, worst 9.9
    ((5.0, 6.5, 9.0), 4),     # median over 6 s
    ((4.0, 5.0, 11.0), 4),    # worst over 10 s
    ((12.0, 12.0, 13.0), 3),
    ((25.0, 25.0, 40.0), 2),
])
def test_failover_score_bands_read_median_and_worst_of_the_host_crashes(gaps, expected):
    drills = [drill('host_crash', gap) for gap in gaps]
    assert comparison_report.score(AUTOMATIC, [group('tuned', drills)])['failover']['score'] == expected


def test_failover_score_loses_a_point_per_broken_invariant_and_never_drops_below_one():
    fast = [drill('host_crash', 4.0)] * 3
    facts = {'p': AUTOMATIC}
    split = fast + [dict(drill('host_freeze', 5.0), split_brain_after_restore=True)]
    assert comparison_report.score(facts['p'], [group('tuned', split)])['failover']['score'] == 4
    lost = split + [drill('dcs_partition', 8.0, lost=402)]
    scored = comparison_report.score(facts['p'], [group('tuned', lost)])['failover']
    assert scored['score'] == 3
    assert '402 acknowledged write(s) lost' in scored['evidence']
    stuck = lost + [dict(drill('network_partition', 0.1), fault_to_first_write=None, trailing_gap=30.0)]
    assert comparison_report.score(facts['p'], [group('tuned', stuck)])['failover']['score'] == 2
    slow = [drill('host_crash', 50.0)] + stuck[3:]
    assert comparison_report.score(facts['p'], [group('tuned', slow)])['failover']['score'] == 1
    # A loss in the profile that promises none counts as well.
    broken_promise = [group('tuned', fast), group('synchronous', [drill('host_crash', 4.0, lost=1)])]
    assert comparison_report.score(facts['p'], broken_promise)['failover']['score'] == 4


def test_redundancy_score_counts_standbys_rejoins_and_a_lossless_profile():
    facts = {'p': AUTOMATIC}
    crash = [drill('host_crash', 4.0)]
    assert comparison_report.score(facts['p'], [group('tuned', crash)])['redundancy']['score'] == 4
    assert comparison_report.score(facts['p'], [group('tuned', crash, replicas=1)])['redundancy']['score'] == 3
    assert comparison_report.score(facts['p'], [group('tuned', crash, replicas=0)])['redundancy']['score'] == 1
    lossless = [group('tuned', crash), group('synchronous', [drill('host_crash', 5.0)])]
    assert comparison_report.score(facts['p'], lossless)['redundancy']['score'] == 5
    lossy = [group('tuned', crash), group('synchronous', [drill('host_crash', 5.0, lost=3)])]
    assert comparison_report.score(facts['p'], lossy)['redundancy']['score'] == 4
    not_rejoined = [group('tuned', [dict(drill('host_crash', 4.0), rejoined=False)])]
    assert comparison_report.score(facts['p'], not_rejoined)['redundancy']['score'] == 3


def test_open_source_score_and_unmeasured_solutions():
    facts = load_facts()
    scored = {ha: comparison_report.score(facts[ha], []) for ha in facts}
    assert scored['raima']['open_source']['score'] == 1
    assert scored['efm']['open_source']['score'] == 1
    assert scored['pgcluster']['open_source']['score'] == 2
    # Open source, installed from the distribution: 5; from outside it (Patroni from PyPI): 4.
    assert scored['streaming']['open_source']['score'] == 5
    assert scored['patroni']['open_source']['score'] == 4
    for ha in facts:
        # Without measurements only the licence is scored.
        assert [scored[ha][req]['score'] for req in ('redundancy', 'failover', 'monitoring')] == [None] * 3


def load_facts():
    return comparison_report.load_solutions(SOLUTIONS)


def test_profiles_that_promise_no_loss_come_from_the_descriptors_expect_no_loss():
    facts = load_facts()
    assert facts['patroni']['no_loss_profiles'] == ['synchronous']
    assert facts['pgpool']['no_loss_profiles'] == ['synchronous']
    assert facts['streaming']['no_loss_profiles'] == []
    assert facts['patroni']['defaults_profile'] == 'tuned'
    assert facts['streaming']['defaults_profile'] == 'default'
    assert facts['patroni']['status_command'] and not facts['streaming']['status_command']


def test_which_one_when_ranks_the_measured_defaults_and_names_broken_invariants():
    facts = load_facts()
    groups = {
        'patroni': [dict(group('tuned', [drill('host_crash', 11.0)]), ha='patroni'),
                    dict(group('synchronous', [drill('host_crash', 11.5)]), ha='patroni')],
        'pgpool': [dict(group('tuned', [drill('host_crash', 5.0), drill('dcs_partition', 8.0, lost=7)]), ha='pgpool')],
        'streaming': [dict(group('default', [drill('host_crash', 14.0)]), ha='streaming')],
        # Only a stock profile: not ranked, its defaults were not measured.
        'repmgr': [dict(group('stock', [drill('host_crash', 1.0)]), ha='repmgr')],
    }
    solutions = [comparison_report._solution_summary(ha, facts[ha], mine) for ha, mine in groups.items()]
    advice = comparison_report.which_one_when(solutions)
    assert advice[0].startswith('Shortest write outage after a host crash')
    assert advice[0].index('Pgpool-II') < advice[0].index('Patroni')
    assert 'repmgr' not in advice[0]
    assert any(sentence.startswith('When no acknowledged write may be lost: Patroni on etcd,') for sentence in advice)
    assert any('Pgpool-II with watchdog with the collection\'s defaults: 7 acknowledged write(s) lost (dcs_partition)'
               in sentence for sentence in advice)
    assert any(sentence.startswith('Without automatic failover, Streaming replication') for sentence in advice)


def test_renders_report_and_chart(tmp_path):
    results = tmp_path / 'results'
    results.mkdir()
    for profile, gap in (('stock', 35.0), ('tuned', 8.0)):
        (results / ('patroni-%s.json' % profile)).write_text(json.dumps({
            'ha': 'patroni', 'profile': profile, 'settings': {'ttl': 30 if profile == 'stock' else 6},
            'deploy': {'cold_seconds': 100, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
            'drills': [drill('host_crash', gap), drill('host_crash', gap + 1)],
            'machine': {'hostname': 'lab', 'cpus': 2, 'kernel': '6.1', 'cpu_model': 'Test CPU', 'python_loop_seconds': 0.8},
            'started': 'a', 'finished': 'b'}))
    report = render_report(tmp_path, results)
    assert 'CPU Test CPU, a fixed Python loop took 0.8 s' in report
    assert '| host_crash | 2 | 35.5 / 36.0 |' in report
    assert '| host_crash | 2 | 8.5 / 9.0 |' in report
    assert report.index('stock settings') < report.index('tuned settings')
    # Scored from the collection's defaults (tuned): 8.5 / 9.0 s, nothing lost.
    assert '| Patroni on etcd | yes | **4/5**: ' in report
    assert '**4/5**: automatic, median write outage 8.5 s, worst 9.0 s over 2 host crash(es)' in report
    assert '- **failover**: manual only: 1.' in report
    assert 'Shortest write outage after a host crash with the collection\'s defaults: Patroni on etcd (median 8.5 s' in report
    assert (tmp_path / 'comparison.png').stat().st_size > 1000


def test_failed_drills_and_glance_table_are_shown(tmp_path):
    results = tmp_path / 'results'
    results.mkdir()
    failed = dict(drill('postgres_kill', 4.0), error='fatal: the old primary did not rejoin', run=2)
    (results / 'patroni-tuned.json').write_text(json.dumps({
        'ha': 'patroni', 'profile': 'tuned', 'settings': {},
        'deploy': {'cold_seconds': 90, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
        'drills': [dict(drill('host_crash', 9.0), stale_reads=3, stale_reads_after_recovery=1, reads={'succeeded': 500}),
                   drill('postgres_kill', 2.0), failed],
        'machine': {}, 'started': 'a', 'finished': 'b'}))
    report = render_report(tmp_path, results)
    assert '| patroni (tuned) | 9.0 / 9.0, lost 0 | 3.0 / 4.0, lost 0, 1 failed | 90 |' in report
    assert '- postgres_kill run 2 (patroni-tuned.json run 2): fatal: the old primary did not rejoin' in report
    assert '| 0 of 100 | 0 | n/a | n/a | 3 of 500 (1 later than the bound after recovery) |' in report, \
        'stale reads of the host crash'
    assert '| 0 of 200 | 0 | n/a | n/a |' in report, 'no read endpoint measured for postgres_kill'


def test_stale_reads_after_recovery_only_when_every_run_counted_them():
    counted = dict(drill('host_crash', 3.0), stale_reads=5, stale_reads_after_recovery=1, reads={'succeeded': 900})
    older = dict(drill('host_crash', 3.0), stale_reads=2, reads={'succeeded': 900})
    row = comparison_report.summarise({'drills': [counted, dict(counted, stale_reads_after_recovery=0)]})[0]
    assert (row['stale_reads'], row['stale_reads_after_recovery'], row['reads']) == (10, 1, 1800)
    # a run from before the count: the total would claim too few
    row = comparison_report.summarise({'drills': [counted, older]})[0]
    assert (row['stale_reads'], row['stale_reads_after_recovery']) == (7, None)


@pytest.mark.parametrize('error, reason', [
    # the drill's verdict, after an assert of the same play that passed
    ('    "msg": "All assertions passed" | fatal: [localhost]: FAILED! => { |     "msg": "Drill failed: 3 split-brain '
     'observation(s), 0 lost write(s) ([])."', 'Drill failed: 3 split-brain observation(s), 0 lost write(s) ([]).'),
    # a command that gave up: its msg is empty, the task that retried names it
    ('FAILED - RETRYING: [pg1]: Wait until every standby streams (1 retries left). | fatal: [pg1]: FAILED! => '
     '{"attempts": 120, "changed": false, "msg": "", "rc": 0, "stdout": "pg3"',
     'Wait until every standby streams on pg1: gave up after its retries'),
    ('fatal: the old primary did not rejoin', 'fatal: the old primary did not rejoin'),
])
def test_a_failed_drill_is_shown_with_its_reason(error, reason):
    assert comparison_report.failure_reason(error) == reason


def test_a_fault_without_any_measurement_says_so(tmp_path):
    results = tmp_path / 'results'
    results.mkdir()
    broken = {'fault': 'host_freeze', 'run': 1, 'error': 'fatal: pg1 unreachable'}
    unverified = dict(drill('postgres_kill', 0.5), lost_count=None, error='fatal: no primary found', run=1)
    (results / 'repmgr-tuned.json').write_text(json.dumps({
        'ha': 'repmgr', 'profile': 'tuned', 'settings': {},
        'deploy': {'cold_seconds': 90, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
        'drills': [drill('host_crash', 6.0), unverified, broken], 'machine': {}, 'started': 'a', 'finished': 'b'}))
    report = render_report(tmp_path, results)
    assert ('| repmgr (tuned) | 6.0 / 6.0, lost 0 | no measurement, 1 of 1 failed '
            '| 0.5 / 0.5, lost 0 (1 unverified), 1 failed | 90 |') in report
    assert '| host_freeze | 1 | n/a / n/a | n/a / n/a | 0 of 0 (1 run(s) unverified) |' in report
    assert 'None' not in report.split('## The study')[0]


def test_every_system_of_the_study_has_a_row(tmp_path):
    """Measured or not, deployable or excluded: each descriptor is a row of the four-requirements table."""
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'streaming-default.json').write_text(json.dumps({
        'ha': 'streaming', 'profile': 'default', 'settings': {},
        'deploy': {'cold_seconds': 90, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
        'drills': [drill('host_crash', 14.0)], 'machine': {}, 'started': 'a', 'finished': 'b'}))
    table = render_report(tmp_path, results).split("## The study's four requirements", 1)[1].split('## Results per solution', 1)[0]
    rows = {line.split(' | ')[0].lstrip('| '): line for line in table.splitlines() if line.startswith('| ') and '---' not in line}
    for title in ('Streaming replication (no failover manager)', 'Patroni on etcd', 'repmgr + repmgrd',
                  'Pgpool-II with watchdog', 'PAF on Pacemaker/Corosync', 'PGCluster', 'Raima Database Manager',
                  'EDB Failover Manager'):
        assert title in rows, (title, list(rows))
    assert ' | yes | ' in rows['Streaming replication (no failover manager)']
    assert ' | not yet | ' in rows['Patroni on etcd']
    assert 'no: abandoned' in rows['PGCluster']
    assert 'no: not PostgreSQL' in rows['Raima Database Manager']
    assert 'no: closed source' in rows['EDB Failover Manager']
    assert list(rows).index('Streaming replication (no failover manager)') < list(rows).index('PGCluster')


def _result(profile='tuned', settings=None, drills=(), started='2026-12-01T10:00:00Z', cold=100, rerun=20):
    return {'ha': 'pgpool', 'profile': profile, 'settings': settings or {'pgpool_health_check_period': 1},
            'probe': {'interval_ms': 10}, 'deploy': {'cold_seconds': cold, 'rerun_seconds': rerun, 'rerun_changed': 0},
            'drills': list(drills), 'machine': {'hostname': 'lab'}, 'started': started, 'finished': started}


def test_tagged_results_add_runs_to_the_same_solution_and_profile(tmp_path):
    """<ha>-<profile>.<tag>.json adds runs: one row per fault over all of them, the latest run's deployment."""
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'pgpool-tuned.json').write_text(json.dumps(_result(drills=[
        dict(drill('host_crash', 5.0), run=1), dict(drill('switchover', 2.0), run=1)])))
    (results / 'pgpool-tuned.more.json').write_text(json.dumps(_result(
        drills=[dict(drill('host_crash', g), run=i) for i, g in ((1, 3.0), (2, 4.0), (3, 9.0))],
        started='2026-12-02T10:00:00Z', cold=300, rerun=12)))
    (merged,) = comparison_report.load_results(str(results))
    rows = {r['fault']: r for r in comparison_report.summarise(merged)}
    assert rows['host_crash']['runs'] == 4 and rows['host_crash']['rto_median'] == 4.5
    assert rows['switchover']['runs'] == 1
    assert sorted(d['run'] for d in merged['drills'] if d['fault'] == 'host_crash') == [1, 2, 3, 4]
    # renumbered, but each run still names its file and its own number there
    assert sorted(d['source'] for d in merged['drills'] if d['fault'] == 'host_crash') == [
        'pgpool-tuned.json run 1', 'pgpool-tuned.more.json run 1', 'pgpool-tuned.more.json run 2',
        'pgpool-tuned.more.json run 3']
    # the deployment as the latest code gave it, with the range over every run
    assert merged['deploy']['cold_seconds'] == 300 and merged['deploy']['rerun_seconds'] == 12
    assert merged['deploy']['measured_by'] == 'pgpool-tuned.more.json'
    assert merged['deploy']['rerun_seconds_range'] == [12, 20] and merged['deploy']['reruns_measured'] == 2
    assert merged['started'] == '2026-12-01T10:00:00Z'
    assert [p['file'] for p in merged['parts']] == ['pgpool-tuned.json', 'pgpool-tuned.more.json']


def test_results_measured_with_other_settings_are_not_merged(tmp_path):
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'pgpool-tuned.json').write_text(json.dumps(_result(drills=[drill('host_crash', 5.0)])))
    (results / 'pgpool-tuned.later.json').write_text(json.dumps(_result(
        settings={'pgpool_health_check_period': 2}, drills=[drill('host_crash', 5.0)])))
    with pytest.raises(SystemExit, match='other settings'):
        comparison_report.load_results(str(results))


def test_faults_a_solution_lacks_the_means_for_do_not_apply(tmp_path):
    """Streaming has no coordination layer and no HA agent: its dcs_partition and agent_kill
    cells say so, where a fault that applies but was not run says "not run"."""
    assert comparison_report.load_solutions(SOLUTIONS)['streaming']['faults_not_applicable'] == \
        ['agent_kill', 'dcs_partition']
    assert comparison_report.load_solutions(SOLUTIONS)['patroni']['faults_not_applicable'] == []
    results = tmp_path / 'results'
    results.mkdir()
    for ha, profile in (('streaming', 'default'), ('patroni', 'tuned')):
        (results / ('%s-%s.json' % (ha, profile))).write_text(json.dumps({
            'ha': ha, 'profile': profile, 'settings': {},
            'deploy': {'cold_seconds': 90, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
            'drills': ([drill('host_crash', 9.0), dict(drill('agent_kill', 1.0), agent_kill_whom='main')]
                       if ha == 'patroni' else [drill('host_crash', 9.0)]),
            'machine': {}, 'started': 'a', 'finished': 'b'}))
    report = render_report(tmp_path, results)
    assert '| streaming (default) | 9.0 / 9.0, lost 0 | does not apply | 90 |' in report
    assert '| patroni (tuned) | 9.0 / 9.0, lost 0 | 1.0 / 1.0, lost 0 | 90 |' in report
    assert '1 of 6 fault classes measured (dcs_partition, agent_kill do not apply)' in report


def test_agent_kill_runs_that_killed_postgresql_too_are_set_aside(tmp_path):
    """Before the drill recorded agent_kill_whom it killed every process of the agent's
    unit: under Patroni (PostgreSQL inside that unit) those runs stay in the JSON, out of
    the numbers; under Pgpool-II (its own unit) they still count."""
    facts = comparison_report.load_solutions(SOLUTIONS)
    assert facts['patroni']['agent_unit_runs_postgresql'] and facts['paf']['agent_unit_runs_postgresql']
    assert not facts['pgpool'].get('agent_unit_runs_postgresql')
    results = tmp_path / 'results'
    results.mkdir()
    for ha in ('patroni', 'pgpool'):
        (results / ('%s-tuned.json' % ha)).write_text(json.dumps(dict(_result(drills=[
            drill('host_crash', 8.0), drill('agent_kill', 6.0), drill('agent_kill', 6.4)]), ha=ha)))
    (results / 'patroni-tuned.agent.json').write_text(json.dumps(dict(_result(drills=[
        dict(drill('agent_kill', 2.0), agent_kill_whom='main')]), ha='patroni')))
    context = comparison_report.build_context(comparison_report.load_results(str(results)), facts)
    groups = {g['ha']: g for g in context['groups']}
    assert (groups['patroni']['by_fault']['agent_kill']['runs'], groups['patroni']['by_fault']['agent_kill']['rto_worst']) == (1, 2.0)
    assert [d['max_gap'] for d in groups['patroni']['set_aside']] == [6.0, 6.4]
    assert groups['pgpool']['by_fault']['agent_kill']['runs'] == 2 and not groups['pgpool']['set_aside']
    report = render_report(tmp_path, results)
    assert report.count('Not counted: 2 agent_kill run(s) of the earlier drill') == 1


def test_a_run_where_the_old_primary_took_the_role_back_is_named(tmp_path):
    """PAF without fencing: a resumed frozen primary was kept promoted and the node promoted
    meanwhile demoted; the writes counted again on the old primary show as lost."""
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'pgpool-tuned.json').write_text(json.dumps(_result(drills=[
        drill('host_crash', 5.0),
        dict(drill('host_freeze', 5.2, lost=1630), reverted_to_old_primary=True, split_brain_after_restore=True),
        # recorded before the drill knew the case: the probe's 0 came from the discarded history
        dict(drill('host_freeze', 5.3, lost=0), promoted_elsewhere=True, primary_before='pg2', new_primary='pg2')])))
    rows = {r['fault']: r for r in comparison_report.summarise(comparison_report.load_results(str(results))[0])}
    assert rows['host_freeze']['reverted'] == 2 and rows['host_freeze']['lost'] == 1630
    assert rows['host_freeze']['unverified'] == 1
    assert rows['host_crash']['reverted'] == 0
    report = render_report(tmp_path, results)
    assert 'host_freeze: in 2 run(s) the old primary took the role back' in report


def test_runs_in_which_the_cluster_fenced_the_broken_host_are_counted(tmp_path):
    """PAF with the lab's power switch: a frozen primary is turned off before another
    node is promoted; the report says in how many runs of each fault that happened."""
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'paf-tuned.json').write_text(json.dumps(_result(drills=[
        dict(drill('host_crash', 6.1), target_fenced=None),
        dict(drill('host_freeze', 4.9), target_fenced=True),
        dict(drill('host_freeze', 5.2), target_fenced='True'),
        dict(drill('host_freeze', 5.4), target_fenced=True),
        drill('host_freeze', 5.5),
        dict(drill('postgres_kill', 3.1), target_fenced=False)])))
    rows = {r['fault']: r for r in comparison_report.summarise(comparison_report.load_results(str(results))[0])}
    assert rows['host_freeze']['fenced'] == 3 and rows['host_freeze']['fenced_recorded'] == 3
    assert rows['host_crash']['fenced'] == 0 and rows['postgres_kill']['fenced'] == 0
    report = render_report(tmp_path, results)
    assert ('host_freeze: the cluster fenced (turned off) the broken host in 3 of 3 run(s) '
            'that recorded it (1 ran before the drill recorded it)') in report
    assert 'postgres_kill: the cluster fenced' not in report and 'host_crash: the cluster fenced' not in report


def test_what_the_lab_lacks_is_printed_beside_the_solutions_results(tmp_path):
    """A solution measured without something it needs in production (PAF before the lab
    had a power switch: no fence device): its section and the advice say so, from the
    descriptor's report.lab_limits, so its rows are read with that in mind."""
    solutions = tmp_path / 'solutions'
    shutil.copytree(SOLUTIONS, solutions)
    paf = yaml.safe_load((solutions / 'paf.yml').read_text())
    paf['pgha_solution']['report']['lab_limits'] = 'a fence device.'
    (solutions / 'paf.yml').write_text(yaml.safe_dump(paf))
    results = tmp_path / 'results'
    results.mkdir()
    for ha in ('paf', 'pgpool'):
        (results / ('%s-tuned.json' % ha)).write_text(json.dumps({
            'ha': ha, 'profile': 'tuned', 'settings': {},
            'deploy': {'cold_seconds': 100, 'rerun_seconds': 20, 'rerun_changed': 0, 'replicas': 2},
            'drills': [drill('host_crash', 6.0)], 'machine': {}, 'started': 'a', 'finished': 'b'}))
    report = render_report(tmp_path, results, solutions)
    pgpool_section = report[report.index('### pgpool — tuned settings'):report.index('### paf — tuned settings')]
    paf_section = report[report.index('### paf — tuned settings'):report.index('## Where and when')]
    assert 'Measured without something it needs in production: a fence device.' in paf_section
    assert 'Measured without something' not in pgpool_section
    assert '- PAF on Pacemaker/Corosync was measured without something it needs in production: a fence device.' in report
