"""write_probe against real PostgreSQL 15 servers on loopback.

Every run is a few seconds long; every wait is bounded.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.probe import ProbeConfig, WriteProbe
from tests.helpers.fixtures import SUPERUSER_PASSWORD, free_port, run_module, wait_for
from tests.helpers import pgpool as pgpool_helpers

pgpool_factory = pgpool_helpers.pgpool_factory   # the fixture, for the test through Pgpool-II

TABLE_DDL = ('CREATE TABLE IF NOT EXISTS pgha_write_probe (run_id text, id bigint, '
             'client_ts double precision, PRIMARY KEY (run_id, id))')


def direct_dsn(inst):
    return 'host=127.0.0.1 port=%d user=postgres dbname=postgres' % inst.port


def multi_host_dsn(*instances):
    return ('host=%s port=%s user=postgres dbname=postgres target_session_attrs=read-write'
            % (','.join('127.0.0.1' for dummy in instances), ','.join(str(i.port) for i in instances)))


def label(inst):
    return '127.0.0.1:%d' % inst.port


def present_ids(inst, run_id):
    return set(r['id'] for r in inst.sql('SELECT id FROM pgha_write_probe WHERE run_id = %s', (run_id,)))


def wait_sync(primary):
    wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                                    "AND sync_state IN ('sync', 'quorum')") == 1, timeout=30, what='sync standby')


def replicated_table(primary, standby):
    primary.sql(TABLE_DDL)
    wait_for(lambda: standby.scalar("SELECT to_regclass('pgha_write_probe') IS NOT NULL"), timeout=30,
             what='table on the standby')


class ProbeThread(threading.Thread):
    """Runs the core probe in the background, like an async task."""

    def __init__(self, **config):
        super().__init__(daemon=True)
        self.probe = WriteProbe(ProbeConfig(password=SUPERUSER_PASSWORD, **config))
        self.probe.preflight()
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.probe.run()
        except Exception as exc:  # surfaced by finish()
            self.error = exc

    def finish(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), 'probe thread did not stop'
        if self.error:
            raise self.error
        return self.result


def wait_acked(probe, count=20):
    wait_for(lambda: len(probe.acknowledged_ids()) >= count, timeout=10, interval=0.05, what='acknowledged writes')


def test_steady_run_through_the_module(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    replicated_table(primary, standby)
    nodes = [direct_dsn(primary), direct_dsn(standby)]
    result = run_module('write_probe', dict(
        dsn=multi_host_dsn(primary, standby), password=SUPERUSER_PASSWORD, duration=2, interval_ms=10,
        verify_dsns=nodes, split_brain_dsns=nodes, read_dsn=direct_dsn(standby), run_id='steady'))
    assert not result.failed, result
    assert result.changed
    # Paced: never more than one write per interval; the lower bound only says writes went on all along.
    assert 20 <= result['acknowledged'] <= 205
    assert result['attempts'] == result['acknowledged'] + result['errors']['total']
    assert result['errors']['total'] == 0, (result['first_error'], result['last_error'])
    assert result['lost'] == [] and result['lost_count'] == 0
    assert result['indeterminate_count'] == 0
    assert result['max_gap'] < 1.5
    assert result['verified'] and result['verify_errors'] == []
    assert result['primary_after'] == label(primary) and result['timeline_after'] == 1
    assert result['split_brain_count'] == 0 and result['split_brain_rounds'] >= 5
    # Only the primary accepted writes, up to the end of the run.
    assert list(result['writable_last_seen']) == [label(primary)]
    assert result['writable_last_seen'][label(primary)] >= result['run_ended'] - 1
    assert result['stale_reads'] == 0 and result['reads']['succeeded'] > 0
    assert result['fault_to_first_write'] is None
    assert len(present_ids(primary, 'steady')) == result['acknowledged']
    assert SUPERUSER_PASSWORD not in json.dumps(result)


def test_check_mode_and_bad_input_write_nothing(pg_factory, tmp_path):
    primary = pg_factory.primary()
    base = dict(dsn=direct_dsn(primary), password=SUPERUSER_PASSWORD, duration=2)
    result = run_module('write_probe', base, check_mode=True)
    assert not result.failed, result
    assert result['skipped'] is True and not result.changed
    assert result['table_exists'] is False and result['endpoint_node'] == label(primary)
    for bad, word in ((dict(duration=0), 'duration'), (dict(interval_ms=0), 'interval_ms'),
                      (dict(table='x; drop table y'), 'table'), (dict(split_brain_dsns=[direct_dsn(primary)]),
                                                                 'split_brain_dsns')):
        result = run_module('write_probe', dict(base, **bad))
        assert result.failed and word in result['msg'], result
    marker = tmp_path / 'fault'
    marker.write_text('1')
    result = run_module('write_probe', dict(base, fault_marker_file=str(marker)))
    assert result.failed and 'fault_marker_file' in result['msg']
    result = run_module('write_probe', dict(base, dsn='host=127.0.0.1 port=%d user=postgres' % free_port()))
    assert result.failed and 'dsn' in result['msg']
    result = run_module('write_probe', dict(base, dsn=direct_dsn(primary) + ' password=' + SUPERUSER_PASSWORD,
                                            password=None))
    assert result.failed and 'password' in result['msg']
    assert SUPERUSER_PASSWORD not in json.dumps(result)
    assert primary.scalar("SELECT to_regclass('pgha_write_probe') IS NULL")


def test_unreachable_verify_node_is_reported(pg_factory):
    primary = pg_factory.primary()
    closed = 'host=127.0.0.1 port=%d user=postgres dbname=postgres' % free_port()
    result = run_module('write_probe', dict(dsn=direct_dsn(primary), password=SUPERUSER_PASSWORD, duration=1,
                                            verify_dsns=[closed, direct_dsn(primary)], cleanup=True))
    assert not result.failed, result
    assert [e['node'] for e in result['verify_errors']] == [closed.split()[0][5:] + ':' + closed.split()[1][5:]]
    assert result['verified'] and result['lost_count'] == 0 and result['cleaned_up']
    assert primary.scalar("SELECT to_regclass('pgha_write_probe') IS NULL")


def test_start_timeout_waits_for_an_endpoint_that_comes_up(pg_factory):
    primary = pg_factory.primary()
    primary.stop()
    base = dict(dsn=direct_dsn(primary), password=SUPERUSER_PASSWORD, duration=1, cleanup=True)
    # Without it, one attempt and a clear failure.
    result = run_module('write_probe', base)
    assert result.failed and 'Cannot use the write endpoint' in result['msg'], result
    # With it, the probe keeps trying until the server is up, then runs in full.
    starter = threading.Timer(1.5, primary.start)
    starter.start()
    try:
        result = run_module('write_probe', dict(base, start_timeout=20, run_id='late'))
    finally:
        starter.join(90)
    assert not result.failed, result
    assert result['start_attempts'] >= 2 and result['settings']['start_timeout'] == 20
    assert result['acknowledged'] > 0 and result['errors']['total'] == 0 and result['lost_count'] == 0
    assert result['run_ended'] - result['run_started'] >= 1


def test_start_timeout_does_not_retry_bad_input(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    began = time.monotonic()
    result = run_module('write_probe', dict(dsn=direct_dsn(standby), password=SUPERUSER_PASSWORD, duration=1,
                                            start_timeout=30))
    assert result.failed and 'standby' in result['msg'], result
    assert time.monotonic() - began < 15   # one attempt, not 30 s of them
    assert primary.scalar("SELECT to_regclass('pgha_write_probe') IS NULL")
    for bad in (-1, 61):
        result = run_module('write_probe', dict(dsn=direct_dsn(primary), password=SUPERUSER_PASSWORD, duration=1,
                                                start_timeout=bad))
        assert result.failed and 'start_timeout' in result['msg'], result


def test_sync_failover_loses_nothing(pg_factory, tmp_path):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    # Synchronous only once the standby streams: the harness's own setup writes must not wait.
    primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
    primary.sql('SELECT pg_reload_conf()')
    wait_sync(primary)
    marker = str(tmp_path / 'fault')
    # Long enough that a loaded machine still sees writes resume inside the window.
    job = ProbeThread(dsn=multi_host_dsn(primary, standby), duration=8, fault_marker_file=marker,
                      verify_dsns=[direct_dsn(primary), direct_dsn(standby)])
    job.start()
    wait_acked(job.probe, 50)
    with open(marker, 'w') as handle:
        handle.write('%.6f\n' % time.time())
    primary.kill9()
    standby.sql('SELECT pg_promote()')
    result = job.finish()

    # No bound on how long the outage is: on a fast machine kill + promote takes about one interval.
    assert result['errors']['total'] > 0
    fault_time = result['fault_time']
    assert fault_time - 0.01 <= result['first_error']['time'] <= result['last_error']['time']
    assert result['max_gap'] > 0 and result['max_gap_start'] < result['max_gap_end']
    assert result['fault_time_source'] == 'marker_content'
    assert result['fault_to_first_write'] is not None, 'no write was acknowledged after the failover'
    assert 0 < result['fault_to_first_write'] < 8
    assert result['primary_after'] == label(standby) and result['timeline_after'] == 2
    assert result['verify_errors'][0]['node'] == label(primary)
    assert result['lost_count'] == 0 and result['lost'] == []
    acked = job.probe.acknowledged_ids()
    assert len(acked) == result['acknowledged'] and max(acked) > 50
    assert set(acked) <= present_ids(standby, result['run_id'])


def test_async_failover_reports_the_exact_lost_ids(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    replicated_table(primary, standby)
    # Cut replication: everything written from now on exists only on the primary.
    standby.sql("ALTER SYSTEM SET primary_conninfo = ''")
    standby.sql('SELECT pg_reload_conf()')
    wait_for(lambda: primary.scalar('SELECT count(*) FROM pg_stat_replication') == 0, timeout=30,
             what='walreceiver gone')
    job = ProbeThread(dsn=multi_host_dsn(primary, standby), duration=3, interval_ms=25, create_table=False,
                      verify_dsns=[direct_dsn(primary), direct_dsn(standby)])
    job.start()
    wait_acked(job.probe, 20)
    before_kill = job.probe.acknowledged_ids()
    primary.kill9()
    standby.sql('SELECT pg_promote()')
    result = job.finish()

    acked = job.probe.acknowledged_ids()
    expected = [i for i in acked if i not in present_ids(standby, result['run_id'])]
    assert set(before_kill) <= set(expected)
    assert result['lost_count'] == len(expected) > 0
    assert result['lost'] == expected[:100]
    assert result['primary_after'] == label(standby)
    assert len(acked) > len(expected), 'writes resumed on the promoted standby'


def test_two_primaries_are_reported_as_split_brain(pg_factory):
    first = pg_factory.primary('first')
    second = pg_factory.primary('second')
    job = ProbeThread(dsn=direct_dsn(first), duration=1.5, split_brain_interval_ms=100,
                      split_brain_dsns=[direct_dsn(first), direct_dsn(second)], verify_dsns=[direct_dsn(first)])
    job.start()
    result = job.finish()
    assert result['split_brain_count'] >= 5
    assert result['split_brain'][0]['nodes'] == [label(first), label(second)]
    assert result['split_brain'][0]['end'] >= result['split_brain'][0]['start'] >= result['run_started']
    seen = result['writable_last_seen']
    assert sorted(seen) == sorted([label(first), label(second)])
    assert result['run_started'] <= seen[label(second)] <= result['run_ended']


def test_paused_standby_gives_stale_reads(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    replicated_table(primary, standby)
    standby.sql('SELECT pg_wal_replay_pause()')
    job = ProbeThread(dsn=direct_dsn(primary), duration=1.5, read_dsn=direct_dsn(standby), stale_read_bound_ms=200,
                      verify_dsns=[direct_dsn(primary), direct_dsn(standby)])
    job.start()
    result = job.finish()
    assert result['stale_reads'] > 10 and result['reads']['stale'] == result['stale_reads']
    assert result['lost_count'] == 0


@pytest.mark.parametrize('resumed_after_fault', [False, True])
def test_stale_reads_after_recovery(pg_factory, resumed_after_fault):
    """Stale reads count as 'after recovery' only past the bound after writes came back from the fault:
    a standby that catches up before that leaves none, one that still lags past it leaves some."""
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    replicated_table(primary, standby)
    standby.sql('SELECT pg_wal_replay_pause()')
    fault_in, resume_in = (0.5, 1.7) if resumed_after_fault else (2.0, 1.0)
    job = ProbeThread(dsn=direct_dsn(primary), duration=3, read_dsn=direct_dsn(standby), stale_read_bound_ms=300,
                      fault_at=time.time() + fault_in)
    resume = threading.Timer(resume_in, standby.sql, ['SELECT pg_wal_replay_resume()'])
    job.start()
    resume.start()
    result = job.finish()
    resume.join(10)
    assert result['errors']['total'] == 0 and result['fault_to_first_write'] < 0.2, result
    assert result['stale_reads'] > 10
    if resumed_after_fault:
        assert 0 < result['stale_reads_after_recovery'] < result['stale_reads']
    else:
        assert result['stale_reads_after_recovery'] == 0


@pytest.mark.parametrize('table_before', ['absent', 'on the primary only'])
def test_preflight_through_a_load_balancer(pg_factory, pgpool_factory, table_before):
    """Pgpool-II sends every plain read to a standby that lacks the table (replay paused):
    the probe's checks still run on the primary (its transaction starts with the CREATE)."""
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    standby.sql('SELECT pg_wal_replay_pause()')
    if table_before != 'absent':
        primary.sql(TABLE_DDL)
    pool = pgpool_factory.start([primary, standby], settings={
        'load_balance_mode': 'on', 'backend_weight0': '0', 'backend_weight1': '1'})
    # The premise: a read outside a transaction lands on the standby.
    assert pool.sql('SELECT inet_server_port() AS port')[0]['port'] == standby.port

    job = ProbeThread(dsn='host=127.0.0.1 port=%d user=postgres dbname=postgres' % pool.port, duration=1,
                      read_dsn=direct_dsn(primary), verify_dsns=[direct_dsn(primary)])
    job.start()
    result = job.finish()
    assert result['acknowledged'] > 0 and result['lost_count'] == 0
    assert standby.scalar("SELECT to_regclass('pgha_write_probe') IS NULL"), 'the standby replayed the CREATE'


def test_frozen_server_cannot_hold_the_probe(pg_factory):
    primary = pg_factory.primary()
    postmaster = int(open(os.path.join(primary.data_directory, 'postmaster.pid')).readline())
    job = ProbeThread(dsn=direct_dsn(primary), duration=2.5, connect_timeout=0.3, write_timeout=0.3)
    job.start()
    wait_acked(job.probe, 20)
    children = subprocess.run(['pgrep', '-P', str(postmaster)], capture_output=True, text=True,
                              check=False).stdout.split()
    frozen = [postmaster] + [int(pid) for pid in children]
    started = time.monotonic()
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        job.join(10)
        stopped_after = time.monotonic() - started
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    result = job.finish()
    assert stopped_after < 4, 'the probe outlived its duration by far'
    assert result['errors']['timeout'] + result['errors']['connect'] >= 1
    assert result['trailing_gap'] > 0.5 or result['max_gap'] > 0.5


def test_fault_time_sources(pg_factory, tmp_path):
    primary = pg_factory.primary()
    marker = tmp_path / 'fault'
    for source, config in (('fault_at', dict(fault_at=time.time() + 0.5)),
                           ('marker_mtime', dict(fault_marker_file=str(marker)))):
        job = ProbeThread(dsn=direct_dsn(primary), duration=1, **config)
        job.start()
        time.sleep(0.5)
        marker.write_text('')  # empty: the modification time is the fault time
        result = job.finish()
        assert result['fault_time_source'] == source
        # Nothing failed after the fault: the first acknowledged write after it, within a few intervals.
        assert 0 <= result['fault_to_first_write'] < 1.0
        marker.unlink()


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Start the probe in the background
      pgha.cluster.write_probe:
        dsn: "{{ dsn }}"
        password: "{{ pw }}"
        duration: 6
        fault_marker_file: "{{ marker }}"
        verify_dsns: ["{{ dsn }}"]
      async: 60
      poll: 0
      register: job
    # As the drill's steady-state wait does: the fault comes after the probe has
    # started writing, or the probe rightly refuses a marker that is already there.
    - name: Wait until the probe has written
      ansible.builtin.command: psql "{{ dsn }}" -Atc "SELECT count(*) > 0 FROM pgha_write_probe"
      environment:
        PGPASSWORD: "{{ pw }}"
        PGCONNECT_TIMEOUT: "2"
      register: written
      until: written.stdout == 't'
      retries: 100
      delay: 0.3
      failed_when: false
      changed_when: false
    - name: Mark the fault
      ansible.builtin.shell: date +%s.%N > {{ marker }}
    - name: Collect the report
      ansible.builtin.async_status:
        jid: "{{ job.ansible_job_id }}"
      register: probe
      until: probe.finished
      retries: 40
      delay: 0.5
    - name: Keep it for the test
      ansible.builtin.copy:
        content: "{{ probe | to_json }}"
        dest: "{{ out }}"
"""


def test_async_playbook_with_marker_file(pg_factory, tmp_path):
    primary = pg_factory.primary()
    playbook, out, variables = tmp_path / 'drill.yml', tmp_path / 'out.json', tmp_path / 'vars.json'
    playbook.write_text(PLAYBOOK)
    variables.write_text(json.dumps(dict(dsn=direct_dsn(primary), pw=SUPERUSER_PASSWORD, marker=str(tmp_path / 'fault'),
                                         out=str(out), ansible_python_interpreter=sys.executable)))
    bin_dir = os.path.dirname(sys.executable)
    run = subprocess.run([os.path.join(bin_dir, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                          '-e', '@' + str(variables), str(playbook)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['finished'] and not result.get('failed'), result
    assert result['acknowledged'] > 100 and result['lost_count'] == 0
    assert result['fault_time_source'] == 'marker_content'
    assert result['run_started'] < result['fault_time'] < result['run_ended']
    assert SUPERUSER_PASSWORD not in run.stdout + out.read_text()
