"""rewind never takes a healthy server down: the refusals of issue 10, on real servers.

Each test asserts on the servers themselves (still a primary and writable, not
restarted, streaming on the right timeline), not only on the module's result.
"""
import os

from tests.helpers.fixtures import run_module, wait_for
from tests.integration.test_rewind import follows, no_secret, rewind_args
from tests.integration.test_standby_clone import clone_args


def streaming_pair(pg_factory):
    primary = pg_factory.primary()
    primary.sql('CREATE TABLE t (id int)')
    standby = pg_factory.standby_of(primary)
    wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1,
             what='standby streaming')
    return primary, standby


def started_at(node):
    return node.scalar('SELECT pg_postmaster_start_time()')


def assert_healthy_primary(node, start_time, value):
    """Running, same postmaster, not in recovery, no standby.signal, and it takes a write."""
    assert node.is_running()
    assert started_at(node) == start_time, 'the server was restarted'
    assert node.in_recovery() is False
    assert not os.path.exists(os.path.join(node.data_directory, 'standby.signal'))
    node.sql('INSERT INTO t VALUES (%s)' % value)
    assert node.scalar('SELECT count(*) FROM t WHERE id = %s' % value) == 1


def assert_streaming_from(node, upstream, timeline):
    wait_for(lambda: node.sql("SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming' "
                              "AND received_tli = %s AND sender_port = %s" % (timeline, upstream.port)),
             what='streaming from port %d on timeline %d' % (upstream.port, timeline))


def test_primary_is_never_rewound_onto_its_own_standby(pg_factory):
    """Issue 10 item 1: a failover whose promotion did not happen, then the rejoin step."""
    primary, standby = streaming_pair(pg_factory)
    before = started_at(primary)
    args = rewind_args(primary, standby, stop_server=True, start=True, fallback='reclone')

    for check_mode in (True, False):
        refused = run_module('rewind', args, check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'primary' in refused['msg'] and 'timeline 1' in refused['msg']
        assert 'Promote the source' in refused['msg']
        no_secret(refused)
        assert_healthy_primary(primary, before, 10 + check_mode)
        assert standby.in_recovery() is True
        assert_streaming_from(standby, primary, 1)

    # a cleanly stopped primary is not demoted onto its standby either
    primary.stop()
    refused = run_module('rewind', args)
    assert refused.failed and 'timeline 1' in refused['msg'], refused
    assert not os.path.exists(os.path.join(primary.data_directory, 'standby.signal'))
    primary.start()
    assert primary.in_recovery() is False


def test_source_that_is_the_node_itself_is_refused_before_stopping_it(pg_factory):
    """Issue 10 item 2: source_port pointing at the node's own port."""
    primary, standby = streaming_pair(pg_factory)
    before = started_at(primary)
    args = rewind_args(primary, primary, stop_server=True, start=True)
    for check_mode in (True, False):
        refused = run_module('rewind', args, check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'the node itself' in refused['msg'] and 'source_port' in refused['msg']
        assert_healthy_primary(primary, before, 20 + check_mode)
    assert_streaming_from(standby, primary, 1)


def test_standby_already_following_the_source_is_left_running(pg_factory):
    """Issue 10 item 3: after P -> S1 failover and the rewind of S2 onto S1, a second run changes nothing."""
    primary, s1 = streaming_pair(pg_factory)
    s2 = pg_factory.new_instance('standby2')
    assert not run_module('standby_clone', clone_args(primary, s2, start=True)).failed
    assert_streaming_from(s2, primary, 1)

    primary.stop()
    assert s1.scalar('SELECT pg_promote()') is True
    wait_for(lambda: s1.in_recovery() is False, what='promotion')

    first = run_module('rewind', rewind_args(s2, s1, stop_server=True, start=True))
    assert not first.failed, first.get('msg', first)
    assert first.changed
    assert_streaming_from(s2, s1, 2)
    before = started_at(s2)
    # the standby's control file still shows timeline 1 until its next restartpoint
    assert s2.scalar('SELECT timeline_id FROM pg_control_checkpoint()') == 1

    for extra in (dict(stop_server=True, start=True), dict()):
        for check_mode in (True, False):
            again = run_module('rewind', rewind_args(s2, s1, **extra), check_mode=check_mode)
            assert not again.failed, again.get('msg', again)
            assert not again.changed and again['method'] == 'none', again
            assert not again['stopped'] and not again['started']
            assert again['old_timeline'] == 2
    assert started_at(s2) == before, 'a healthy standby was restarted'
    assert_streaming_from(s2, s1, 2)
    s1.sql('INSERT INTO t VALUES (30)')
    wait_for(lambda: s2.scalar('SELECT count(*) FROM t WHERE id = 30') == 1, what='row on s2')

    # issue 10 item 9: check mode reports a start only where the real run starts the node
    s2.stop()
    checked = run_module('rewind', rewind_args(s2, s1, start=True), check_mode=True)
    assert not checked.failed and checked.changed and checked['started'] and checked['method'] == 'none', checked
    assert not s2.is_running()


def test_old_primary_still_running_after_a_promotion_is_rewound(pg_factory):
    """The legitimate case next to item 1: the source is on a newer timeline."""
    from tests.integration.test_rewind import failover
    old, new = failover(pg_factory)
    result = run_module('rewind', rewind_args(old, new, stop_server=True, start=True))
    assert not result.failed, result.get('msg', result)
    assert result['method'] == 'rewind' and result['stopped']
    follows(old, new, 40)


def test_standby_that_took_the_old_primarys_last_wal_is_refused_a_repoint_then_rewound(pg_factory):
    """A standby still streaming from the old primary when that one wrote after the promotion cannot follow.

    standby_clone refuses it with nothing changed and says why in ``diverged`` (the streaming role's follow
    then rewinds it); rewind stops it, rewinds it and it streams from the new primary without the lost row.
    """
    primary, s1 = streaming_pair(pg_factory)
    s2 = pg_factory.new_instance('standby2')
    assert not run_module('standby_clone', clone_args(primary, s2, application_name='old_primary',
                                                      start=True)).failed
    assert_streaming_from(s2, primary, 1)
    assert s1.scalar('SELECT pg_promote()') is True
    wait_for(lambda: s1.in_recovery() is False, what='promotion')
    primary.sql('INSERT INTO t VALUES (666)')  # after the promotion, and s2 still streams from the old primary
    wait_for(lambda: s2.scalar('SELECT count(*) FROM t WHERE id = 666') == 1, what='the diverged row on s2')
    primary.stop()
    s2_started = started_at(s2)

    for check_mode in (True, False):
        refused = run_module('standby_clone', clone_args(s1, s2, application_name='old_primary'),
                             check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'timeline 1' in refused['diverged'] and refused['diverged'] in refused['msg']
        no_secret(refused)
    assert started_at(s2) == s2_started and s2.in_recovery() is True

    rewound = run_module('rewind', rewind_args(s2, s1, stop_server=True, start=True))
    assert not rewound.failed, rewound.get('msg', rewound)
    assert rewound['method'] == 'rewind' and rewound['stopped'] and rewound['started'], rewound
    follows(s2, s1, 40)
