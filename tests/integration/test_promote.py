"""pgha.cluster.promote against real PostgreSQL primaries and standbys on loopback."""
import json
import os
import time

import psycopg

from tests.helpers.fixtures import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, free_port, run_module, wait_for


def promote(args, **kwargs):
    result = run_module('promote', args, **kwargs)
    text = json.dumps(result)
    assert SUPERUSER_PASSWORD not in text and REPLICATION_PASSWORD not in text
    return result


def timeline(pg, **conn):
    """Current timeline as the server itself reports it (walfile name of the insert/replay position)."""
    with pg.connect(**conn) as c:
        row = c.execute("SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)"
                        " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                        " END AS tli").fetchone()
        return row['tli']


def streaming_pair(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1,
             what='standby streaming')
    return primary, standby


def test_promote_via_sql_check_mode_and_idempotence(pg_factory):
    primary, standby = streaming_pair(pg_factory)
    args = dict(standby.login_args())

    checked = promote(args, check_mode=True)
    assert checked.changed and not checked.failed, checked
    assert checked['role_before'] == 'standby' and checked['method'] == 'sql'
    assert checked['old_timeline'] == 1 and checked['new_timeline'] is None
    assert standby.in_recovery() is True, 'check mode must not promote'

    primary.stop()
    done = promote(args)
    assert done.changed and not done.failed, done
    assert done['method'] == 'sql' and done['role_before'] == 'standby'
    assert (done['old_timeline'], done['new_timeline']) == (1, 2)
    assert done['duration'] > 0
    assert standby.in_recovery() is False
    assert timeline(standby) == 2
    history = standby.scalar("SELECT pg_read_file('pg_wal/00000002.history')")
    assert done['promote_lsn'] == history.split()[1]
    standby.sql('CREATE TABLE written_after_promotion (id int)')

    again = promote(args)
    assert not again.changed and not again.failed
    assert again['role_before'] == 'primary'
    assert again['old_timeline'] == again['new_timeline'] == 2
    assert again['promote_lsn'] is None
    assert not promote(args, check_mode=True).changed


def socket_only(standby):
    """Restart ``standby`` listening on its Unix socket only: TCP logins find nothing."""
    with open(os.path.join(standby.data_directory, 'postgresql.conf'), 'a') as handle:
        handle.write("listen_addresses = ''\n")
    standby.stop()
    standby.start()
    return dict(host=os.path.dirname(standby.data_directory))


def test_promote_via_pg_ctl_when_sql_is_unreachable(pg_factory, pg_bin_dir):
    primary, standby = streaming_pair(pg_factory)
    sock = socket_only(standby)
    wait_for(lambda: standby.connect(**sock).execute('SELECT pg_is_in_recovery() AS r').fetchone()['r'],
             what='standby up on its socket')
    tcp = dict(standby.login_args(), connect_timeout=2)  # 127.0.0.1:port: nothing listens there now

    no_dir = promote(tcp)
    assert no_dir.failed and 'Set data_directory' in no_dir['msg']

    args = dict(tcp, data_directory=standby.data_directory, bin_dir=pg_bin_dir)
    checked = promote(args, check_mode=True)
    assert checked.changed and not checked.failed, checked
    assert checked['method'] == 'pg_ctl' and checked['old_timeline'] == 1
    assert 'Connection refused' in checked['connection_error']

    primary.stop()
    with standby.connect(**sock) as conn:
        assert conn.execute('SELECT pg_is_in_recovery() AS r').fetchone()['r'] is True
    done = promote(args)
    assert done.changed and not done.failed, done
    assert done['method'] == 'pg_ctl'
    assert (done['old_timeline'], done['new_timeline']) == (1, 2)
    with standby.connect(**sock) as conn:
        assert conn.execute('SELECT pg_is_in_recovery() AS r').fetchone()['r'] is False
    assert timeline(standby, **sock) == 2
    with open(os.path.join(standby.data_directory, 'pg_wal', '00000002.history')) as handle:
        assert done['promote_lsn'] == handle.read().split()[1]

    again = promote(args)
    assert not again.changed and not again.failed, again
    assert again['method'] == 'pg_ctl' and again['role_before'] == 'primary'
    assert again['new_timeline'] == 2


def test_bad_input_fails_and_changes_nothing(pg_factory, tmp_path):
    primary, standby = streaming_pair(pg_factory)
    base = standby.login_args()

    wrong_password = promote(dict(base, login_password='Wrong-pw-3', data_directory=standby.data_directory))
    assert wrong_password.failed and 'password authentication failed' in wrong_password['msg']
    assert 'does not fall back to pg_ctl' in wrong_password['msg']
    assert 'Wrong-pw-3' not in json.dumps(wrong_password)

    not_a_dir = promote(dict(base, data_directory=str(tmp_path / 'nothing')))
    assert not_a_dir.failed and 'is not a PostgreSQL data directory' in not_a_dir['msg']

    bad_peer = promote(dict(base, expected_primary_absent=['127.0.0.1:notaport']))
    assert bad_peer.failed and 'expected_primary_absent' in bad_peer['msg'] and 'port' in bad_peer['msg']

    bad_wait = promote(dict(base, wait_seconds=0))
    assert bad_wait.failed and 'wait_seconds' in bad_wait['msg']

    unreachable = promote(dict(base, login_port=free_port(), connect_timeout=2))
    assert unreachable.failed and 'Unable to connect' in unreachable['msg']

    assert standby.in_recovery() is True
    assert timeline(standby) == 1


def test_expected_primary_absent_refuses_while_a_primary_answers(pg_factory):
    primary, standby = streaming_pair(pg_factory)
    closed = free_port()
    peers = ['127.0.0.1:%d' % primary.port, 'host=127.0.0.1 port=%d' % closed]
    args = dict(standby.login_args(), expected_primary_absent=peers)

    for check_mode in (True, False):
        refused = promote(args, check_mode=check_mode)
        assert refused.failed and not refused.changed
        assert 'Refusing to promote' in refused['msg'] and '127.0.0.1:%d' % primary.port in refused['msg']
        statuses = dict((p['target'], p['status']) for p in refused['peers'])
        assert statuses == {peers[0]: 'primary', peers[1]: 'absent'}
        assert standby.in_recovery() is True

    # A node that answers but refuses the session: its role is unknown, refuse too.
    rejected_peer = "host=127.0.0.1 port=%d user=no_such_role" % primary.port
    unknown = promote(dict(standby.login_args(), expected_primary_absent=[rejected_peer]))
    assert unknown.failed and 'could not be read' in unknown['msg']
    assert unknown['peers'][0]['status'] == 'unknown'
    assert standby.in_recovery() is True

    # The old primary crashes: now it is absent and the promotion goes ahead.
    primary.kill9()
    wait_for(lambda: _refused(primary.port), what='old primary gone')
    done = promote(args)
    assert done.changed and not done.failed, done
    assert [p['status'] for p in done['peers']] == ['absent', 'absent']
    assert standby.in_recovery() is False
    assert timeline(standby) == 2


def _refused(port):
    try:
        psycopg.connect(host='127.0.0.1', port=port, connect_timeout=1, user='x').close()
    except psycopg.OperationalError as exc:
        return 'refused' in str(exc)
    return False


def test_data_directory_of_another_server_is_refused(pg_factory):
    """Issue 10 item 5: data_directory of standby A with login_port of standby B must not promote B."""
    primary, a = streaming_pair(pg_factory)
    b = pg_factory.standby_of(primary, name='standby_b')
    wait_for(lambda: b.in_recovery() is True, what='standby b up')
    b_started = b.scalar('SELECT pg_postmaster_start_time()')
    wrong = dict(b.login_args(), data_directory=a.data_directory)
    for check_mode in (True, False):
        refused = promote(wrong, check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'another server' in refused['msg'] and a.data_directory in refused['msg']
        assert b.in_recovery() is True and a.in_recovery() is True
        assert b.scalar('SELECT pg_postmaster_start_time()') == b_started
    assert timeline(b) == 1 and timeline(a) == 1

    # the matching pair promotes A, and only A
    primary.stop()
    done = promote(dict(a.login_args(), data_directory=a.data_directory))
    assert done.changed and not done.failed, done
    assert a.in_recovery() is False and b.in_recovery() is True


def test_unreachable_peer_is_an_explicit_choice(pg_factory):
    """Issue 10 item 8: a node that does not answer (a partition) is not silently 'absent'."""
    import socket
    primary, standby = streaming_pair(pg_factory)
    # A peer that accepts TCP and then says nothing: what a partitioned primary looks like to libpq.
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(8)
    try:
        peer = '127.0.0.1:%d' % silent.getsockname()[1]
        args = dict(standby.login_args(), connect_timeout=2, expected_primary_absent=[peer])
        for check_mode in (True, False):
            refused = promote(dict(args, unreachable_peers='refuse'), check_mode=check_mode)
            assert refused.failed and not refused.changed, refused
            assert 'nothing answered' in refused['msg'] and 'unreachable_peers: absent' in refused['msg']
            assert refused['peers'][0]['status'] == 'unreachable'
            assert standby.in_recovery() is True
        assert timeline(standby) == 1

        # omitted: refused too, an unreachable node is never silently absent
        for check_mode in (True, False):
            refused = promote(args, check_mode=check_mode)
            assert refused.failed and not refused.changed, refused
            assert 'nothing answered' in refused['msg'] and peer in refused['msg']
            assert standby.in_recovery() is True

        # a conninfo entry's own connect_timeout wins over the login one: a
        # failover asks a member it already found down only briefly
        started = time.monotonic()
        brief = promote(dict(args, connect_timeout=30,
                             expected_primary_absent=['host=127.0.0.1 port=%d connect_timeout=1'
                                                      % silent.getsockname()[1]]), check_mode=True)
        assert brief.failed and brief['peers'][0]['status'] == 'unreachable', brief
        assert time.monotonic() - started < 20, 'the peer waited for the login connect_timeout (30 s)'
        assert standby.in_recovery() is True

        # the explicit choice promotes
        primary.stop()
        done = promote(dict(args, unreachable_peers='absent'))
        assert done.changed and not done.failed, done
        assert done['peers'][0]['status'] == 'unreachable' and not done.get('warnings')
        assert standby.in_recovery() is False
    finally:
        silent.close()
