"""The repmgr cluster as PostgreSQL and repmgr report it, after converge and the side effects.

side_effect.yml ran a switchover, a host crash of the primary that repmgrd
failed over by itself, the rejoin of the crashed primary, and a deployment
again with synchronous replication on: two promotions, so the primary is at
least on timeline 3, and no marker written (and seen on every standby, or
confirmed by one) may be missing.
"""

from pgha_nodes import member_name, psql, run_as_postgres


SERVICE = 'postgresql@15-main'
REPMGR = '/usr/lib/postgresql/15/bin/repmgr -f /etc/repmgr.conf'
MARKERS = ['before-switchover', 'before-crash', 'synchronous']


def test_exactly_one_primary_and_two_standbys(roles, primary, standbys):
    assert len(roles) == 3
    assert [roles[s] for s in standbys] == ['t', 't']


def test_the_timeline_moved_on_twice(nodes, primary):
    # timeline 1 at bootstrap, 2 after the switchover, 3 after the failover
    timeline = psql(nodes[primary], "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
    assert int(timeline) >= 3


def test_both_standbys_stream_from_the_primary_under_their_member_names(nodes, primary, standbys):
    rows = psql(nodes[primary], "SELECT application_name, state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert rows == ['%s|streaming' % member_name(s) for s in standbys]


def test_standbys_use_repmgr_slots(nodes, primary):
    slots = psql(nodes[primary], "SELECT slot_name FROM pg_replication_slots WHERE active ORDER BY 1").splitlines()
    assert len(slots) == 2 and all(s.startswith('repmgr_slot_') for s in slots), slots


def test_markers_written_before_the_operations_are_on_the_primary(nodes, primary):
    found = psql(nodes[primary], "SELECT name FROM pgha_markers ORDER BY name").splitlines()
    assert sorted(MARKERS) == sorted(set(found) & set(MARKERS))


def test_repmgr_cluster_show_says_every_node_runs(nodes, primary, standbys):
    cmd = run_as_postgres(nodes[primary], 'cd /tmp && %s cluster show' % REPMGR)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    rows = [line.split('|') for line in cmd.stdout.splitlines() if '|' in line][1:]
    status = {r[1].strip(): (r[2].strip(), r[3].strip(), r[4].strip()) for r in rows}
    assert status[member_name(primary)] == ('primary', '* running', '')
    for standby in standbys:
        assert status[member_name(standby)] == ('standby', 'running', member_name(primary))


def test_repmgrd_runs_on_every_node(nodes):
    for name, node in nodes.items():
        assert node.service('repmgrd').is_running, name
        assert node.service('repmgrd').is_enabled, name
    cmd = run_as_postgres(nodes[sorted(nodes)[0]], 'cd /tmp && %s service status --csv' % REPMGR)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    rows = [line.split(',') for line in cmd.stdout.splitlines() if line.strip()]
    assert len(rows) == 3, cmd.stdout
    # csv columns: id, name, role, server running (1), repmgrd running (1), repmgrd PID, paused (0 no), priority, ...
    assert all(r[3] == '1' and r[4] == '1' and r[6] == '0' for r in rows), cmd.stdout


def test_repmgr_account_is_not_a_superuser(nodes, primary):
    assert psql(nodes[primary], "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = 'repmgr'") == 'f|t'


def test_every_member_runs_what_repmgr_asked_the_postgresql_role_for(nodes):
    """postgresql_ha_requirements reached each server: repmgr's library and the role's wal_sender_timeout."""
    for name, node in nodes.items():
        assert psql(node, 'SHOW shared_preload_libraries') == 'repmgr', name
        assert psql(node, 'SHOW wal_sender_timeout') == '3s', name


def test_every_conninfo_carries_the_timeouts(nodes, primary):
    # connect_timeout bounds a check of a dead host; tcp_user_timeout brings it from 2 s to 1 s.
    conninfos = psql(nodes[primary], 'SELECT conninfo FROM repmgr.nodes', database='repmgr').splitlines()
    assert len(conninfos) == 3, conninfos
    for conninfo in conninfos:
        assert 'connect_timeout=2' in conninfo and 'tcp_user_timeout=1000' in conninfo, conninfo
    for name, node in nodes.items():
        if name != primary:
            primary_conninfo = psql(node, 'SHOW primary_conninfo')
            assert 'connect_timeout=2' in primary_conninfo and 'tcp_user_timeout=1000' in primary_conninfo, name


def test_members_reach_each_other_over_verified_tls(nodes, primary, standbys):
    """repmgr's conninfo (and every primary_conninfo repmgr wrote from it) asks for verify-full;
    the walsenders on the primary run over TLS."""
    conninfos = psql(nodes[primary], 'SELECT conninfo FROM repmgr.nodes', database='repmgr').splitlines()
    assert all('sslmode=verify-full' in c and 'sslrootcert=' in c for c in conninfos), conninfos
    for name in standbys:
        # repmgr standby follow quotes the values it writes: sslmode='verify-full'
        assert psql(nodes[name], 'SHOW primary_conninfo').replace("'", '').count('sslmode=verify-full') == 1, name
    encrypted = psql(nodes[primary], "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
                                     "WHERE s.ssl")
    assert encrypted == str(len(standbys))


def test_synchronous_replication_is_on_everywhere(nodes, primary, standbys):
    """side_effect.yml deployed again with repmgr_synchronous_mode: the same rule on every member
    (a promoted standby keeps it), and the primary counts both standbys as quorum candidates."""
    wanted = 'ANY 1 (%s)' % ', '.join('"%s"' % member_name(n) for n in sorted(nodes))
    for name, node in nodes.items():
        assert psql(node, 'SHOW synchronous_standby_names') == wanted, name
    states = psql(nodes[primary], "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert states == ['%s|quorum' % member_name(s) for s in standbys]


def test_the_fence_watches_every_member_and_the_start_check_is_in_place(assert_fence_in_place):
    assert_fence_in_place('pgha-repmgr-fence')


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()
