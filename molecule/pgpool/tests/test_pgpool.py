"""The Pgpool-II cluster as PostgreSQL, Pgpool-II and its watchdog report it, after converge and the side effects.

side_effect.yml refused four bad inputs, ran a switchover through Pgpool-II, a
host crash of the primary that Pgpool-II failed over by itself (the fence kept
the rebooted old primary down and stopped it again when started by hand), the
rejoin of the crashed primary and the loss of the watchdog leader's Pgpool-II: two
promotions, so the primary is at least on timeline 3, both standbys follow it
on that timeline, Pgpool-II has all three backends up, and exactly one member
holds the virtual IP.
"""
import os
import re

import yaml

import pgha_nodes
from pgha_nodes import member_name, run_as_postgres

MARKERS = ['before-switchover', 'before-crash']
PGPASS = 'PGPASSFILE=/var/lib/postgresql/.pgpass_pgpool'
PCPPASS = 'PCPPASSFILE=/var/lib/postgresql/.pcppass'


def psql(node, sql, target=''):
    """As postgres with the role's passfile; target: psql's connection options (default: the local socket)."""
    return pgha_nodes.psql(node, sql, environment=PGPASS, connection=target)


def vip(node):
    conf = node.file('/etc/pgpool2/pgpool.conf').content_string
    return re.search(r"^delegate_IP = '([0-9.]+)'", conf, re.M).group(1)


def timeline_of(node):
    return int(psql(node, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"))


def pool_nodes(node, host='127.0.0.1'):
    out = psql(node, 'SHOW pool_nodes', target='-h %s -p 9999 -U postgres' % host)
    # node_id|hostname|port|status|pg_status|lb_weight|role|pg_role|select_cnt|load_balance_node|replication_delay|...
    return [line.split('|') for line in out.splitlines()]


def test_exactly_one_primary_and_two_standbys(roles, primary, standbys):
    assert len(roles) == 3
    assert [roles[s] for s in standbys] == ['t', 't']


def test_the_timeline_moved_on_twice(nodes, primary):
    # timeline 1 at bootstrap, 2 after the switchover, 3 after the failover
    assert timeline_of(nodes[primary]) >= 3


def test_both_standbys_stream_the_primary_timeline_under_their_member_names(nodes, primary, standbys):
    rows = psql(nodes[primary], "SELECT application_name, state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert rows == ['%s|streaming' % member_name(s) for s in standbys]
    timeline = timeline_of(nodes[primary])
    for standby in standbys:
        assert psql(nodes[standby], 'SELECT received_tli FROM pg_stat_wal_receiver') == str(timeline), standby


def test_standbys_use_their_slots_on_the_primary(nodes, primary, standbys):
    slots = psql(nodes[primary], "SELECT slot_name FROM pg_replication_slots WHERE active ORDER BY 1").splitlines()
    assert slots == [member_name(s) for s in standbys]


def test_markers_written_before_the_operations_are_on_the_primary(nodes, primary):
    found = psql(nodes[primary], "SELECT name FROM pgha_markers ORDER BY name").splitlines()
    assert sorted(MARKERS) == sorted(set(found) & set(MARKERS))


def test_pgpool_sees_every_backend_up_with_the_real_roles(nodes, primary, standbys):
    addresses = {name: node.interface('eth0').addresses[0] for name, node in nodes.items()}
    for name, node in nodes.items():
        rows = pool_nodes(node)
        assert len(rows) == 3, (name, rows)
        by_host = {r[1]: r for r in rows}
        assert by_host[addresses[primary]][3] == 'up' and by_host[addresses[primary]][6] == 'primary', (name, rows)
        for standby in standbys:
            row = by_host[addresses[standby]]
            assert row[3] in ('up', 'waiting') and row[6] == 'standby', (name, rows)


def test_writes_and_load_balanced_reads_through_the_virtual_ip(nodes, primary, standbys):
    node = nodes[standbys[0]]
    address = vip(node)
    target = '-h %s -p 9999 -U postgres' % address
    # a write through the virtual IP lands on the primary
    psql(node, "INSERT INTO pgha_markers (name, written_on) VALUES ('through-vip', 'pgpool') "
               "ON CONFLICT (name) DO NOTHING", target=target)
    assert psql(nodes[primary], "SELECT count(*) FROM pgha_markers WHERE name = 'through-vip'") == '1'
    # reads in new sessions are balanced: some reach a standby
    before = sum(int(r[8]) for r in pool_nodes(node, address) if r[6] == 'standby')
    for attempt in range(20):
        psql(node, "SELECT %d" % attempt, target=target)
    after = sum(int(r[8]) for r in pool_nodes(node, address) if r[6] == 'standby')
    assert after > before


def test_exactly_one_member_holds_the_virtual_ip_and_it_is_the_watchdog_leader(nodes):
    address = vip(next(iter(nodes.values())))
    holders = [name for name, node in nodes.items()
               if ' %s/' % address in node.check_output('ip -o -4 addr show')]
    assert len(holders) == 1, holders
    info = run_as_postgres(nodes[holders[0]], '%s pcp_watchdog_info -w -v -h localhost -p 9898 -U pcpadmin' % PCPPASS)
    assert info.rc == 0, info.stderr
    assert re.search(r'Quorum state\s*:\s*QUORUM EXIST', info.stdout), info.stdout
    assert re.search(r'Alive Remote Nodes\s*:\s*2', info.stdout), info.stdout
    assert re.search(r'Local node escalation\s*:\s*YES', info.stdout), info.stdout


def test_pgpool_runs_everywhere_with_consensus_and_its_secrets_private(nodes):
    for name, node in nodes.items():
        assert node.service('pgpool2').is_running, name
        assert node.service('pgpool2').is_enabled, name
        conf = node.file('/etc/pgpool2/pgpool.conf').content_string
        for setting in ("failover_require_consensus = on", "failover_when_quorum_exists = on",
                        "health_check_period = 1", "enable_pool_hba = on"):
            assert setting in conf, (name, setting)
        assert 'scram-sha-256' in node.file('/etc/pgpool2/pool_hba.conf').content_string
        assert ' trust' not in node.file('/etc/pgpool2/pool_hba.conf').content_string
        for path in ('/etc/pgpool2/pool_passwd', '/etc/pgpool2/pcp.conf', '/var/lib/postgresql/.pcppass',
                     '/var/lib/postgresql/.pgpass_pgpool'):
            assert node.file(path).mode == 0o600 and node.file(path).user == 'postgres', (name, path)


def test_pgpool_reaches_the_backends_over_tls(nodes, standbys):
    """A session through Pgpool-II: its backend connection is encrypted (pg_stat_ssl on the backend)."""
    node = nodes[standbys[0]]
    target = '-h %s -p 9999 -U postgres' % vip(node)
    assert psql(node, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', target=target) == 't'
    for name, member in nodes.items():
        conf = member.file('/etc/pgpool2/pgpool.conf').content_string
        assert "ssl = on" in conf and "ssl_ca_cert = " in conf, name
        for script in ('pgha_failover.sh', 'pgha_follow_primary.sh'):
            text = member.file('/etc/pgpool2/' + script).content_string
            assert 'PGSSLMODE=verify-full' in text and 'PGSSLROOTCERT=' in text, (name, script)


def test_the_standbys_conninfo_verifies_the_new_primary(nodes, standbys):
    """follow_primary_command rewrote primary_conninfo: the host changed, verify-full stayed."""
    for standby in standbys:
        conninfo = psql(nodes[standby], 'SHOW primary_conninfo')
        assert re.search(r"sslmode='?verify-full", conninfo), (standby, conninfo)
        assert psql(nodes[standby], 'SELECT count(*) FROM pg_stat_wal_receiver WHERE status = \'streaming\'') == '1'


def test_the_descriptors_monitor_command_names_the_primary(nodes, primary):
    """The drills' monitoring poll (monitor_primary_command) prints the primary's member name on every member."""
    path = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'playbooks', 'vars', 'solutions', 'pgpool.yml')
    with open(path) as handle:
        command = yaml.safe_load(handle)['pgha_solution']['monitor_primary_command']
    command = re.sub(r"\{\{ *([a-z_]+) *\| *default\(('?)([^')]*)\2\) *\}\}", r'\3', command)
    assert '{{' not in command, command
    for name, node in nodes.items():
        out = node.run(command)
        assert out.rc == 0, out.stderr
        assert out.stdout.split() == [member_name(primary)], (name, out.stdout)


def test_the_fence_watches_every_member_and_the_start_check_is_in_place(assert_fence_in_place):
    assert_fence_in_place('pgha-pgpool-fence')


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()


def test_the_guard_of_the_health_checks_runs_and_had_nothing_to_interrupt(nodes):
    """On a healthy cluster (after the side effects) the guard watches every member's health checks
    and has never interrupted one: it must not touch a check that keeps its own timeout."""
    for name, node in nodes.items():
        guard = node.service('pgha-pgpool-health-check-guard')
        assert guard.is_running and guard.is_enabled, name
        journal = node.run('journalctl -u pgha-pgpool-health-check-guard --no-pager -o cat')
        assert journal.rc == 0, name
        assert 'sending it SIGALRM' not in journal.stdout, (name, journal.stdout[-2000:])
