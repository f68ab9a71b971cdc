"""module_utils.pcp: parsers and decisions, on output captured from Pgpool-II 4.3.5."""
import os
import stat

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pcp

# ``pcp_node_info --verbose -a`` (pgpool2 4.3.5, Debian), primary + streaming standby.
VERBOSE_ALL = (
    'Hostname               : 127.0.0.1\nPort                   : 52069\nStatus                 : 2\n'
    'Weight                 : 0.500000\nStatus Name            : up\n'
    'Backend Status Name    : up\nRole                   : primary\n'
    'Backend Role           : primary\nReplication Delay      : 0\n'
    'Replication State      : none\nReplication Sync State : none\n'
    'Last Status Change     : 2026-11-26 08:06:02\n\n'
    'Hostname               : 127.0.0.1\nPort                   : 54057\nStatus                 : 2\n'
    'Weight                 : 0.500000\nStatus Name            : up\n'
    'Backend Status Name    : up\nRole                   : standby\n'
    'Backend Role           : standby\nReplication Delay      : 0\n'
    'Replication State      : streaming\nReplication Sync State : async\n'
    'Last Status Change     : 2026-11-26 08:06:02\n\n'
)

# ``pcp_node_info --verbose -n 1`` right after ``pcp_detach_node -n 1``.
VERBOSE_DETACHED = (
    'Hostname               : 127.0.0.1\nPort                   : 49121\nStatus                 : 3\n'
    'Weight                 : 0.500000\nStatus Name            : down\n'
    'Backend Status Name    : up\nRole                   : standby\n'
    'Backend Role           : standby\nReplication Delay      : 0\n'
    'Replication State      : none\nReplication Sync State : none\n'
    'Last Status Change     : 2026-11-26 08:05:32\n\n'
)

# ``pcp_node_info -a`` (positional) after ``pcp_promote_node -n 1`` without -s:
# Pgpool-II's role and the real backend role disagree.
TERSE_AFTER_PROMOTE = (
    '127.0.0.1 52069 3 0.500000 down up standby primary 0 none none 2026-11-26 08:06:05\n'
    '127.0.0.1 54057 2 0.500000 up up primary standby 0 streaming async 2026-11-26 08:06:05\n'
)

# ``pcp_pool_status`` excerpt (name / value / desc blocks).
POOL_STATUS = (
    'name : port\nvalue: 40889\ndesc : pgpool accepting port number\n\n'
    'name : failover_command\nvalue: \ndesc : failover command\n\n'
    'name : failback_command\nvalue: \ndesc : failback command\n\n'
    'name : follow_primary_command\nvalue: /etc/pgpool2/follow.sh %d %h\ndesc : follow primary command\n\n'
)

# stderr of failures; every one of these exits with status 0 except where noted.
ERR_INVALID_NODE = 'ERROR:  informing node info failed\nDETAIL:  invalid node ID : 7\n\n'
ERR_ALREADY_DOWN = ('ERROR:  invalid degenerate backend request, node id : 1 status: [3] is not '
                    'valid for failover\n\n')
ERR_ALREADY_PRIMARY = ("FATAL:  invalid promote request\nDETAIL:  specified node is already "
                       "primary node, can't promote node id 0\n\n")
ERR_AUTH = ('FATAL:  authentication failed for user "pcpadmin"\n'
            'DETAIL:  username and/or password does not match\n\n')          # exit 1
ERR_REFUSED = 'ERROR: connection to host "127.0.0.1" failed with error "Connection refused"\n'  # 1
ERR_SOCKET = 'ERROR: unable to read data from socket.\n'                   # exit 1, PCP restart
ERR_PORT = 'pcp_node_info: Invalid port number "1", must be between 1024 and 65535\n'


def test_parse_verbose_all_nodes():
    nodes = pcp.parse_node_info_verbose(VERBOSE_ALL)
    assert len(nodes) == 2
    assert nodes[0] == {
        'hostname': '127.0.0.1', 'port': 52069, 'status': 2, 'weight': 0.5,
        'status_name': 'up', 'backend_status': 'up', 'role': 'primary',
        'backend_role': 'primary', 'replication_delay': 0, 'replication_state': 'none',
        'replication_sync_state': 'none', 'last_status_change': '2026-11-26 08:06:02',
    }
    assert nodes[1]['role'] == 'standby'
    assert nodes[1]['replication_state'] == 'streaming'
    assert nodes[1]['replication_sync_state'] == 'async'


def test_parse_verbose_single_detached():
    (node,) = pcp.parse_node_info_verbose(VERBOSE_DETACHED)
    assert node['status'] == 3 and node['status_name'] == 'down'
    assert node['backend_status'] == 'up'       # PostgreSQL itself still runs
    assert not pcp.is_attached(node)
    assert pcp.satisfied(node, 'detached')


def test_parse_verbose_keeps_unknown_fields_and_splits_unseparated_blocks():
    text = VERBOSE_DETACHED.strip() + '\nSome New Field : x\n' + VERBOSE_DETACHED
    nodes = pcp.parse_node_info_verbose(text)
    assert len(nodes) == 2
    assert nodes[0]['some_new_field'] == 'x'


def test_parse_terse_matches_verbose_fields():
    lines = TERSE_AFTER_PROMOTE.splitlines()
    old, new = [pcp.parse_node_info_line(line) for line in lines]
    assert old['status_name'] == 'down' and old['role'] == 'standby'
    assert old['backend_role'] == 'primary'
    assert new['role'] == 'primary' and new['backend_role'] == 'standby'
    assert new['last_status_change'] == '2026-11-26 08:06:05'
    assert set(new) == set(field[0] for field in pcp.NODE_FIELDS)


def test_parse_terse_rejects_older_format():
    with pytest.raises(pcp.PcpError) as err:
        pcp.parse_node_info_line('/tmp 11003 1 0.500000 waiting up standby')
    assert err.value.kind == 'parse'


def test_parse_pool_status():
    settings = pcp.parse_pool_status(POOL_STATUS)
    assert settings['port'] == '40889'
    assert settings['failover_command'] == ''
    assert settings['follow_primary_command'] == '/etc/pgpool2/follow.sh %d %h'


@pytest.mark.parametrize('stderr, kind, text', [
    (ERR_INVALID_NODE, 'invalid_node', 'invalid node ID : 7'),
    (ERR_ALREADY_DOWN, 'refused', 'is not valid for failover'),
    (ERR_ALREADY_PRIMARY, 'refused', 'already primary'),
    (ERR_AUTH, 'auth', 'authentication failed'),
    (ERR_REFUSED, 'connection', 'Connection refused'),
    (ERR_SOCKET, 'connection', 'unable to read data'),
])
def test_errors_are_found_and_classified(stderr, kind, text):
    message = pcp.parse_errors(stderr)
    assert text in message
    assert pcp.classify_error(message) == kind


class Runner:
    """Replays captured (rc, stdout, stderr) answers and records argv/env."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, env, timeout):
        passfile = env.get('PCPPASSFILE')
        content = open(passfile).read() if passfile and os.path.exists(passfile) else None
        mode = stat.S_IMODE(os.stat(passfile).st_mode) if content is not None else None
        self.calls.append(dict(argv=argv, passfile=passfile, content=content, mode=mode))
        return self.answers.pop(0)


def client(runner, tmp_path, **kw):
    kw.setdefault('password', 'pw:with\\odd')
    return pcp.PcpClient('/usr/sbin', host='127.0.0.1', port=9999, user='pcpadmin',
                         runner=runner, tmpdir=str(tmp_path), **kw)


def test_status_zero_with_error_on_stderr_is_a_failure(tmp_path):
    runner = Runner((0, '', ERR_ALREADY_DOWN))
    with client(runner, tmp_path) as c:
        with pytest.raises(pcp.PcpError) as err:
            c.change('pcp_detach_node', '-n', '1')
    assert err.value.kind == 'refused'
    runner = Runner((0, '', ERR_PORT))
    with client(runner, tmp_path) as c, pytest.raises(pcp.PcpError) as err:
        c.node_infos()
    assert err.value.kind == 'connection'


def test_password_only_in_a_private_passfile(tmp_path):
    runner = Runner((0, VERBOSE_ALL, ''))
    with client(runner, tmp_path) as c:
        nodes = c.node_infos()
        passfile = c.passfile
    assert [n['node_id'] for n in nodes] == [0, 1]
    call = runner.calls[0]
    assert call['argv'] == ['/usr/sbin/pcp_node_info', '-h', '127.0.0.1', '-p', '9999',
                            '-U', 'pcpadmin', '-w', '--verbose', '-a']
    assert 'pw' not in ' '.join(call['argv'])
    assert call['content'] == '127.0.0.1:9999:pcpadmin:pw\\:with\\\\odd\n'
    assert call['mode'] == 0o600
    assert not os.path.exists(passfile)             # removed by close()


def test_read_retries_pcp_child_restart(tmp_path):
    runner = Runner((1, '', ERR_SOCKET), (0, VERBOSE_ALL, ''))
    c = client(runner, tmp_path)
    c.sleep = lambda s: None
    assert len(c.node_infos()) == 2
    assert len(runner.calls) == 2
    c.close()


def test_plan_is_idempotent_and_predicts():
    nodes = pcp.parse_node_info_verbose(VERBOSE_ALL)
    for i, n in enumerate(nodes):
        n['node_id'] = i
    assert pcp.plan(nodes, 1, 'attached')[0] is None
    assert pcp.plan(nodes, 0, 'primary', switchover=False)[0] is None
    cmd, predicted = pcp.plan(nodes, 1, 'detached', gracefully=True)
    assert cmd == ('pcp_detach_node', '-g', '-n', '1')
    assert predicted['status_name'] == 'down'
    cmd, predicted = pcp.plan(nodes, 1, 'primary', switchover=True)
    assert cmd == ('pcp_promote_node', '-s', '-n', '1')
    assert predicted['role'] == 'primary'
    with pytest.raises(pcp.NodeStateError, match='node_id=2 does not exist'):
        pcp.plan(nodes, 2, 'attached')


def test_plan_refuses_promoting_a_detached_node():
    (node,) = pcp.parse_node_info_verbose(VERBOSE_DETACHED)
    node['node_id'] = 0
    with pytest.raises(pcp.NodeStateError, match='Attach it first'):
        pcp.plan([node], 0, 'primary')
    assert pcp.plan([node], 0, 'attached')[0] == ('pcp_attach_node', '-n', '0')
