"""The streaming cluster as PostgreSQL reports it, after converge and the side effects.

Marker rows written around the switchover and the two failovers
(side_effect.yml) tell which operations ran: each one adds a timeline and none
may lose a marker.
"""
import time

import pytest

from pgha_nodes import member_name, psql

SERVICE = 'postgresql@15-main'
MARKERS = ['before-switchover', 'before-failover', 'after-failover', 'after-redeploy', 'before-crash', 'after-rejoin']


def test_every_node_runs_postgresql(nodes):
    for name, node in nodes.items():
        assert node.service(SERVICE).is_running, name


def test_one_primary_two_standbys(roles, primary, standbys):
    assert len(standbys) == 2


def test_standbys_stream_from_the_primary(nodes, primary, standbys):
    rows = psql(nodes[primary], "SELECT application_name, state, sync_state FROM pg_stat_replication "
                                "ORDER BY 1").splitlines()
    assert [r.split('|')[0] for r in rows] == [member_name(s) for s in standbys]
    assert all(r.split('|')[1] == 'streaming' for r in rows), rows
    # ANY 1 quorum: both standbys are quorum candidates
    assert all(r.split('|')[2] == 'quorum' for r in rows), rows
    primary_ip = nodes[primary].check_output("hostname -I").split()[0]
    for name in standbys:
        status = psql(nodes[name], 'SELECT status, sender_host, slot_name FROM pg_stat_wal_receiver')
        assert status == 'streaming|%s|%s' % (primary_ip, member_name(name))


def test_slots_on_the_primary_only(nodes, primary, standbys):
    slots = psql(nodes[primary], "SELECT slot_name, active FROM pg_replication_slots "
                                 "WHERE slot_type = 'physical' ORDER BY 1").splitlines()
    assert slots == ['%s|t' % member_name(s) for s in standbys]
    for name in standbys:
        assert psql(nodes[name], 'SELECT count(*) FROM pg_replication_slots') == '0'


def test_same_timeline_everywhere(nodes, primary):
    timelines = {name: psql(node, 'SELECT timeline_id FROM pg_control_checkpoint()') for name, node in nodes.items()}
    current = int(psql(nodes[primary], 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16)
    for name in nodes:
        if name != primary:
            assert psql(nodes[name], 'SELECT received_tli FROM pg_stat_wal_receiver') == str(current), name
    assert int(timelines[primary]) <= current


def test_timeline_counts_the_role_changes(nodes, primary):
    """Timeline 1 at deploy; the switchover and both failovers each start a new one."""
    markers = psql(nodes[primary], "SELECT count(*) FROM pg_tables WHERE tablename = 'pgha_markers'")
    operations = 0
    if markers == '1':
        names = psql(nodes[primary], 'SELECT name FROM pgha_markers').splitlines()
        operations = ('before-switchover' in names) + ('after-failover' in names) + ('after-rejoin' in names)
    current = int(psql(nodes[primary], 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16)
    assert current == 1 + operations


def test_no_acknowledged_marker_lost(nodes, primary):
    if psql(nodes[primary], "SELECT count(*) FROM pg_tables WHERE tablename = 'pgha_markers'") == '0':
        pytest.skip('side effects did not run')
    for name, node in nodes.items():
        deadline = time.monotonic() + 20
        while True:
            names = sorted(psql(node, 'SELECT name FROM pgha_markers').splitlines())
            if names == sorted(MARKERS) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert names == sorted(MARKERS), name


def test_a_row_written_on_the_primary_reaches_every_standby(nodes, primary, standbys):
    token = str(time.time_ns())
    psql(nodes[primary], 'CREATE TABLE IF NOT EXISTS pgha_verify (token text)')
    psql(nodes[primary], "INSERT INTO pgha_verify VALUES ('%s')" % token)
    for name in standbys:
        deadline = time.monotonic() + 20
        while psql(nodes[name], "SELECT count(*) FROM pgha_verify WHERE token = '%s'" % token) != '1':
            assert time.monotonic() < deadline, '%s did not receive the row' % name
            time.sleep(0.2)


def test_standbys_refuse_writes(nodes, standbys):
    for name in standbys:
        cmd = nodes[name].run("runuser -u postgres -- psql -XAtqc 'CREATE TABLE pgha_forbidden (i int)'")
        assert cmd.rc != 0 and 'read-only transaction' in cmd.stderr


def test_replication_is_tls_verified_by_default(nodes, primary, standbys):
    """Every walsender on the primary runs over TLS, and each standby asked for verify-full."""
    encrypted = psql(nodes[primary], "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
                                     "WHERE s.ssl")
    assert encrypted == str(len(standbys))
    for name in standbys:
        conninfo = psql(nodes[name], 'SHOW primary_conninfo')
        assert 'sslmode=verify-full' in conninfo and 'sslrootcert=' in conninfo, name


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()


def test_the_fence_watches_every_member_and_the_start_check_is_in_place(assert_fence_in_place):
    assert_fence_in_place('pgha-streaming-fence')
