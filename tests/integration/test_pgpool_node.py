"""pgpool_node against a real Pgpool-II 4.3 in front of a real primary and standby."""
import json
import os

import pytest

from tests.helpers.fixtures import wait_for
from tests.helpers import pgpool as pgpool_helpers
from tests.helpers.pgpool import primary_standby_pgpool

MODULE = 'pgpool_node'

pgpool_factory = pgpool_helpers.pgpool_factory   # the fixture, for the tests below


@pytest.fixture
def cluster(pg_bin_dir, tmp_path):
    """A fresh primary + standby + Pgpool-II, for tests that change node states."""
    with primary_standby_pgpool(pg_bin_dir, tmp_path) as nodes:
        yield nodes


@pytest.fixture(scope='module')
def unchanged_cluster(pg_bin_dir, tmp_path_factory):
    """Shared by the tests that must leave every node as it was (each one asserts it)."""
    with primary_standby_pgpool(pg_bin_dir, tmp_path_factory.mktemp('pgpool-shared')) as nodes:
        yield nodes


def pcp_state(pool):
    """(status_name, role) of every node from pcp_node_info."""
    return [(pool.node_info(i)['Status Name'], pool.node_info(i)['Role']) for i in (0, 1)]


def no_secret(result, *secrets):
    dumped = json.dumps(result)
    for secret in secrets:
        assert secret not in dumped
        assert json.dumps(secret)[1:-1] not in dumped     # as JSON escapes it
        assert secret not in repr(result)


def test_read_state(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='attached'))
    assert not result.failed, result
    assert result.changed is False
    assert result['commands'] == []
    node = result['node_before']
    assert node == result['node_after']
    assert node['node_id'] == 1
    assert node['hostname'] == '127.0.0.1'
    assert node['port'] == standby.port
    assert node['status_name'] in ('up', 'waiting')
    assert node['role'] == 'standby' and node['backend_role'] == 'standby'
    assert node['backend_status'] == 'up'
    assert isinstance(node['weight'], float)
    no_secret(result, pool.pcp_password)

    # The same through the PCP Unix socket (pcp_host is its directory).
    by_socket = module_runner(MODULE, dict(pool.pcp_args(), pcp_host=pool.base_dir, node_id=1))
    assert not by_socket.failed, by_socket
    assert by_socket.changed is False
    assert by_socket['node_before']['port'] == standby.port


def test_detach_idempotent_then_attach_back(cluster, module_runner):
    primary, standby, pool = cluster
    args = dict(pool.pcp_args(), node_id=1)

    result = module_runner(MODULE, dict(args, state='detached'), diff=True)
    assert not result.failed, result
    assert result.changed is True
    assert result['node_before']['status_name'] in ('up', 'waiting')
    assert result['node_after']['status_name'] == 'down'
    assert result['commands'] == ['pcp_detach_node -h 127.0.0.1 -p %d -U %s -w -n 1'
                                  % (pool.pcp_port, pool.pcp_user)]
    assert result['diff']['before']['status_name'] in ('up', 'waiting')
    assert result['diff']['after']['status_name'] == 'down'
    # Pgpool-II's own view, through PCP and through SQL, agrees; PostgreSQL is untouched.
    assert pool.node_info(1)['Status Name'] == 'down'
    assert pool.node_info(1)['Backend Status Name'] == 'up'
    assert pool.pool_nodes()[1]['status'] == 'down'
    assert pool.pool_nodes()[0]['status'] == 'up'
    assert standby.in_recovery() is True

    again = module_runner(MODULE, dict(args, state='detached'))
    assert not again.failed, again
    assert again.changed is False
    assert again['commands'] == []

    back = module_runner(MODULE, dict(args, state='attached'))
    assert not back.failed, back
    assert back.changed is True
    assert back['node_after']['status_name'] in ('up', 'waiting')
    assert pool.node_info(1)['Status Name'] in ('up', 'waiting')
    wait_for(lambda: pool.pool_nodes()[1]['status'] in ('up', 'waiting'), timeout=10,
             what='SHOW pool_nodes to show node 1 attached')
    assert pool.pool_nodes()[1]['role'] == 'standby'

    again = module_runner(MODULE, dict(args, state='attached'))
    assert not again.failed and again.changed is False, again


def test_check_mode_predicts_and_changes_nothing(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    before = pcp_state(pool)
    last_change = pool.node_info(1)['Last Status Change']

    detach = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='detached'),
                           check_mode=True, diff=True)
    assert not detach.failed, detach
    assert detach.changed is True
    assert detach['node_after']['status_name'] == 'down'
    assert detach['commands'][0].startswith('pcp_detach_node ')
    assert detach['diff']['after']['status_name'] == 'down'

    promote = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='primary',
                                         switchover=False), check_mode=True)
    assert not promote.failed, promote
    assert promote.changed is True
    assert promote['node_after']['role'] == 'primary'
    assert promote['commands'][0].startswith('pcp_promote_node ')

    assert pcp_state(pool) == before
    assert pool.node_info(1)['Last Status Change'] == last_change
    assert [pool.pool_nodes()[i]['status'] for i in (0, 1)] == ['up', 'up']


def test_nonexistent_node_id_fails_cleanly(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    before = pcp_state(pool)
    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=5, state='detached'))
    assert result.failed
    assert 'node_id=5 does not exist' in result['msg']
    assert '2 backend node(s)' in result['msg']
    assert pcp_state(pool) == before


def test_wrong_password_fails_and_changes_nothing(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    before = pcp_state(pool)
    wrong = 'Not-The-Pcp-Pw9'
    result = module_runner(MODULE, dict(pool.pcp_args(), pcp_password=wrong, node_id=1,
                                        state='detached'))
    assert result.failed
    assert 'PCP authentication failed' in result['msg']
    assert 'pcp_password' in result['msg']
    assert result.get('commands') == []
    no_secret(result, wrong, pool.pcp_password)
    assert pcp_state(pool) == before


def test_primary_without_switchover_changes_only_pgpools_view(cluster, module_runner):
    primary, standby, pool = cluster
    args = dict(pool.pcp_args(), node_id=1, state='primary', switchover=False)

    result = module_runner(MODULE, args, diff=True)
    assert not result.failed, result
    assert result.changed is True
    assert result['node_before']['role'] == 'standby'
    assert result['node_after']['role'] == 'primary'
    assert result['commands'][0].startswith('pcp_promote_node ')
    assert ' -s' not in result['commands'][0]

    # Pgpool-II's view: node 1 primary, the other node marked down ...
    assert pool.node_info(1)['Role'] == 'primary'
    assert pool.node_info(0)['Status Name'] == 'down'
    assert pool.pool_nodes()[1]['role'] == 'primary'
    # ... while PostgreSQL itself did not move at all.
    assert primary.in_recovery() is False
    assert standby.in_recovery() is True
    assert pool.node_info(1)['Backend Role'] == 'standby'

    again = module_runner(MODULE, args)
    assert not again.failed, again
    assert again.changed is False
    assert again['commands'] == []
    assert standby.in_recovery() is True


def test_switchover_refused_without_failover_command(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    before = pcp_state(pool)
    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='primary',
                                        switchover=True))
    assert result.failed
    assert 'failover_command' in result['msg']
    assert result['commands'] == []
    assert pcp_state(pool) == before
    assert primary.in_recovery() is False and standby.in_recovery() is True


def test_primary_requires_explicit_switchover(unchanged_cluster, module_runner):
    primary, standby, pool = unchanged_cluster
    before = pcp_state(pool)
    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='primary'))
    assert result.failed
    assert 'switchover' in result['msg']
    assert pcp_state(pool) == before


def test_switchover_runs_failover_command(pg_factory, pgpool_factory, module_runner):
    """``-s``: Pgpool-II detaches the primary and its failover_command promotes the target."""
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    promote = os.path.join(pg_factory.bin_dir, 'pg_ctl') + ' promote -w -D %R'
    if pg_factory.os_user:
        promote = 'runuser -u %s -- %s' % (pg_factory.os_user, promote)
    pool = pgpool_factory.start([primary, standby], settings={
        'failover_command': "'%s'" % promote})

    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='primary',
                                        switchover=True, pcp_timeout=30))
    assert not result.failed, (result, pool.log_tail())
    assert result.changed is True
    assert result['commands'][0].startswith('pcp_promote_node ')
    assert ' -s ' in result['commands'][0]
    assert result['node_after']['role'] == 'primary'
    assert result['node_after']['backend_role'] == 'primary'
    # PostgreSQL really was promoted; the old primary is only detached in Pgpool-II
    # (no follow_primary_command here, so it still runs as a primary: two writable nodes).
    assert standby.in_recovery() is False
    assert pool.node_info(0)['Status Name'] == 'down'
    assert primary.in_recovery() is False

    again = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='primary',
                                       switchover=True))
    assert not again.failed and again.changed is False, again


def test_passfile_and_password_never_exposed(cluster, module_runner):
    primary, standby, pool = cluster
    args = dict(pool.pcp_args())
    del args['pcp_password']
    result = module_runner(MODULE, dict(args, pcp_passfile=pool.pcppass_file, node_id=1,
                                        state='detached'), diff=True)
    assert not result.failed, result
    assert result.changed is True
    no_secret(result, pool.pcp_password)

    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='attached'), diff=True)
    assert not result.failed and result.changed, result
    no_secret(result, pool.pcp_password)
    for command in result['commands']:
        assert pool.pcp_password not in command

    missing = module_runner(MODULE, dict(args, pcp_passfile='/nonexistent/pcppass', node_id=1))
    assert missing.failed and 'pcp_passfile' in missing['msg']


def test_password_with_colon_and_backslash(pg_factory, pgpool_factory, module_runner):
    """The temporary PCPPASSFILE escapes ':' and '\\' the way the PCP tools read them."""
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    odd = 'pc:p\\pw:9'
    pool = pgpool_factory.start([primary, standby], pcp_password=odd)
    result = module_runner(MODULE, dict(pool.pcp_args(), node_id=1, state='detached'))
    assert not result.failed, result
    assert result.changed is True
    assert pool.node_info(1)['Status Name'] == 'down'
    no_secret(result, odd)
