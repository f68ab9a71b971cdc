"""Two repmgr members and a witness, as PostgreSQL and repmgr report them after the side effects.

side_effect.yml cut the standby off from the primary alone (nothing was
promoted, checked there), crashed the primary's host (the standby took over
with the witness as its majority, and the witness followed it), rejoined the
crashed primary and switched back over to it. The witness's server is always
a primary of its own cluster, so the members are told apart from it by name.
"""
import pytest

from pgha_nodes import member_name, psql, run_as_postgres

REPMGR = '/usr/lib/postgresql/15/bin/repmgr -f /etc/repmgr.conf'


@pytest.fixture(scope='module')
def witness(nodes):
    names = [name for name in nodes if name.endswith('-witness')]
    assert len(names) == 1, sorted(nodes)
    return names[0]


@pytest.fixture(scope='module')
def members(nodes, witness):
    return sorted(name for name in nodes if name != witness)


@pytest.fixture(scope='module')
def member_roles(nodes, members):
    return {name: psql(nodes[name], 'SELECT pg_is_in_recovery()') for name in members}


@pytest.fixture(scope='module')
def new_primary(member_roles):
    primaries = [name for name, in_recovery in member_roles.items() if in_recovery == 'f']
    assert len(primaries) == 1, member_roles
    return primaries[0]


def test_the_other_member_streams_from_the_primary(nodes, members, new_primary):
    # pg1 was the primary at deployment, pg2 after the crash, pg1 again after the switchover
    assert new_primary.endswith('-pg1')
    timeline = psql(nodes[new_primary], "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
    assert int(timeline) >= 3
    other = [m for m in members if m != new_primary][0]
    rows = psql(nodes[new_primary], 'SELECT application_name, state FROM pg_stat_replication').splitlines()
    assert rows == ['%s|streaming' % member_name(other)]


def test_writes_from_before_and_after_the_crash_are_on_the_primary(nodes, new_primary):
    # one row while the standby was cut off (after its catch-up it streamed before the crash), one after the promotion
    assert int(psql(nodes[new_primary], 'SELECT count(*) FROM pgha_witness_check')) >= 2


def test_repmgr_lists_the_witness_under_the_new_primary(nodes, witness, new_primary):
    cmd = run_as_postgres(nodes[new_primary], 'cd /tmp && %s cluster show' % REPMGR)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    rows = [[cell.strip() for cell in line.split('|')] for line in cmd.stdout.splitlines() if '|' in line][1:]
    status = {row[1]: (row[2], row[3], row[4]) for row in rows}
    assert status[member_name(witness)] == ('witness', '* running', member_name(new_primary)), cmd.stdout
    assert status[member_name(new_primary)] == ('primary', '* running', ''), cmd.stdout


def test_the_witness_runs_repmgrd_and_its_guard_but_no_fence(nodes, witness):
    node = nodes[witness]
    assert node.service('repmgrd').is_running
    assert node.service('repmgrd').is_enabled
    assert node.service('pgha-repmgrd-guard').is_running
    # its server is always a primary: a fence there would keep it down
    assert not node.file('/usr/local/lib/pgha-repmgr-fence').exists
    assert psql(node, 'SELECT pg_is_in_recovery()') == 'f'


def test_the_members_count_the_witness_in_both_fences(nodes, members, witness):
    address = nodes[witness].check_output("ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")
    for name in members:
        conf = nodes[name].file('/etc/repmgr.conf').content_string
        # 3 voters: a primary with one attached node (the standby or the witness) is a majority
        assert 'child_nodes_connected_min_count=1' in conf
        assert 'child_nodes_connected_include_witness=true' in conf
        script = nodes[name].file('/usr/local/lib/pgha-repmgr-fence').content_string
        assert "witnesses=%s=%s" % (witness, address) in script, name


def test_the_witness_lets_repmgr_in_but_not_for_replication(nodes, witness):
    rules = psql(nodes[witness], "SELECT database, user_name FROM pg_hba_file_rules WHERE 'repmgr' = ANY(user_name)")
    assert rules and 'replication' not in rules, rules
