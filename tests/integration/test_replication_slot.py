"""pgha.cluster.replication_slot against real PostgreSQL servers on loopback."""
import json

import pytest

from tests.helpers.fixtures import SUPERUSER_PASSWORD, free_port, run_module, wait_for


def slot_run(args, **kwargs):
    """Run the module and check that no password ever reaches its result."""
    result = run_module('replication_slot', args, **kwargs)
    text = json.dumps(result)
    assert SUPERUSER_PASSWORD not in text
    if args.get('login_password'):
        assert args['login_password'] not in text
    return result


def slots(pg):
    return dict((r['slot_name'], r) for r in pg.sql(
        'SELECT slot_name, slot_type, plugin, database, active, active_pid, two_phase, '
        'restart_lsn::text FROM pg_replication_slots'))


@pytest.fixture
def primary(pg_factory):
    return pg_factory.primary()


@pytest.fixture
def logical_primary(pg_factory):
    return pg_factory.primary(name='logical', settings={'wal_level': 'logical'})


def test_physical_slot_check_mode_create_and_idempotence(primary):
    args = dict(primary.login_args(), name='standby1', immediately_reserve=True)

    checked = slot_run(args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed
    assert checked['queries'] == [
        "SELECT * FROM pg_catalog.pg_create_physical_replication_slot('standby1', true)"]
    assert checked['diff']['before'] == {}
    assert checked['diff']['after']['slot_type'] == 'physical'
    assert slots(primary) == {}, 'check mode must not create the slot'

    created = slot_run(args, diff=True)
    assert created.changed and not created.failed, created
    assert created['queries'] == checked['queries']
    server = slots(primary)['standby1']
    assert server['slot_type'] == 'physical'
    assert server['restart_lsn'] is not None, 'immediately_reserve must reserve WAL at once'
    assert created['slot']['slot_name'] == 'standby1'
    assert created['slot']['restart_lsn'] == server['restart_lsn']
    assert created['slot']['wal_status'] == 'reserved'
    assert created['diff']['before'] == {} and created['diff']['after']['slot_name'] == 'standby1'

    again = slot_run(args, diff=True)
    assert not again.changed and not again.failed
    assert again['queries'] == []
    assert again['diff']['before'] == again['diff']['after']

    # Drop: check mode first, then for real, then idempotent.
    absent = dict(primary.login_args(), name='standby1', state='absent')
    checked_drop = slot_run(absent, check_mode=True)
    assert checked_drop.changed
    assert checked_drop['queries'] == ["SELECT pg_catalog.pg_drop_replication_slot('standby1')"]
    assert 'standby1' in slots(primary)
    dropped = slot_run(absent, diff=True)
    assert dropped.changed and dropped['slot'] == {}
    assert dropped['diff']['after'] == {}
    assert slots(primary) == {}
    assert not slot_run(absent).changed


def test_physical_slot_without_reserve_has_no_restart_lsn(primary):
    result = slot_run(dict(primary.login_args(), slot_name='lazy'))
    assert result.changed
    assert slots(primary)['lazy']['restart_lsn'] is None


def test_logical_slots_default_plugin_and_two_phase(logical_primary):
    pg = logical_primary
    base = pg.login_args()
    created = slot_run(dict(base, name='cdc', slot_type='logical'))
    assert created.changed, created
    server = slots(pg)['cdc']
    assert (server['slot_type'], server['plugin'], server['database']) == ('logical', 'pgoutput', 'postgres')
    assert server['two_phase'] is False
    assert created['slot']['confirmed_flush_lsn'] is not None
    assert not slot_run(dict(base, name='cdc', slot_type='logical')).changed
    assert not slot_run(dict(base, name='cdc', slot_type='logical', output_plugin='pgoutput')).changed

    two_phase = slot_run(dict(base, name='audit', slot_type='logical', output_plugin='test_decoding',
                              two_phase=True))
    assert two_phase.changed, two_phase
    assert "'audit', 'test_decoding', false, true" in two_phase['queries'][0]
    server = slots(pg)['audit']
    assert server['plugin'] == 'test_decoding' and server['two_phase'] is True
    assert not slot_run(dict(base, name='audit', slot_type='logical', output_plugin='test_decoding',
                             two_phase=True)).changed
    # two_phase omitted: an existing slot is not compared on it.
    assert not slot_run(dict(base, name='audit', slot_type='logical', output_plugin='test_decoding')).changed
    # output_plugin omitted: nor on its plugin (issue 10 item 9: it was compared as pgoutput and failed)
    for check_mode in (True, False):
        kept = slot_run(dict(base, name='audit', slot_type='logical'), check_mode=check_mode)
        assert not kept.failed and not kept.changed, kept
    assert slots(pg)['audit']['plugin'] == 'test_decoding'
    mismatch = slot_run(dict(base, name='audit', slot_type='logical', output_plugin='test_decoding',
                             two_phase=False))
    assert mismatch.failed and 'two_phase is True, requested False' in mismatch['msg']


def test_existing_slot_with_other_type_or_plugin_fails(logical_primary):
    pg = logical_primary
    base = pg.login_args()
    pg.sql("SELECT pg_create_physical_replication_slot('phys')")
    pg.sql("SELECT pg_create_logical_replication_slot('logi', 'pgoutput')")
    before = slots(pg)

    wrong_type = slot_run(dict(base, name='phys', slot_type='logical'))
    assert wrong_type.failed and not wrong_type.changed
    assert 'slot_type is physical, requested logical' in wrong_type['msg']

    wrong_type2 = slot_run(dict(base, name='logi', slot_type='physical'))
    assert wrong_type2.failed and 'slot_type is logical, requested physical' in wrong_type2['msg']

    wrong_plugin = slot_run(dict(base, name='logi', slot_type='logical', output_plugin='test_decoding'))
    assert wrong_plugin.failed
    assert 'output_plugin is pgoutput, requested test_decoding' in wrong_plugin['msg']

    pg.sql('CREATE DATABASE app')
    wrong_db = slot_run(dict(base, login_db='app', name='logi', slot_type='logical'))
    assert wrong_db.failed and 'database is postgres, requested app' in wrong_db['msg']

    assert slots(pg) == before, 'a mismatch must not change anything'


BAD_NAMES = [
    ('Upper', 'lower case letters'),
    ('with-dash', 'lower case letters'),
    ("x'; DROP TABLE t; --", 'lower case letters'),
    ('x' * 64, 'maximum is 63'),
    ('', 'must not be empty'),
]


def test_bad_slot_name_fails_before_connecting(primary):
    for name, fragment in BAD_NAMES:
        # A closed port proves the module never tried to connect.
        closed = dict(primary.login_args(), login_port=free_port(), name=name)
        result = slot_run(closed)
        assert result.failed and not result.changed
        assert 'Invalid slot name' in result['msg'] and fragment in result['msg']
        assert 'name option' in result['msg']
        result = slot_run(dict(primary.login_args(), name=name))
        assert result.failed and 'Invalid slot name' in result['msg']
    assert slots(primary) == {}


OTHER_TYPE_OPTIONS = [
    (dict(output_plugin='pgoutput'), 'output_plugin applies only to logical slots'),
    (dict(two_phase=True), 'two_phase applies only to logical slots'),
    (dict(slot_type='logical', immediately_reserve=True), 'immediately_reserve applies only to physical'),
]


def test_options_of_the_other_slot_type_fail(primary):
    for extra, fragment in OTHER_TYPE_OPTIONS:
        result = slot_run(dict(primary.login_args(), name='s', **extra))
        assert result.failed and fragment in result['msg']
    assert slots(primary) == {}


def test_unsupported_options_for_server_version_fail(logical_primary):
    pg = logical_primary
    version = pg.scalar('SHOW server_version_num')
    if int(version) >= 170000:
        pytest.skip('failover is supported on this server')
    for check_mode in (True, False):
        result = slot_run(dict(pg.login_args(), name='fo', slot_type='logical', failover=True),
                          check_mode=check_mode)
        assert result.failed and not result.changed
        assert 'failover=true needs PostgreSQL 17 or later' in result['msg']
        assert 'the server runs %d.' % (int(version) // 10000) in result['msg']
    assert slots(pg) == {}


def test_logical_slot_needs_wal_level_logical(primary):
    result = slot_run(dict(primary.login_args(), name='cdc', slot_type='logical'), check_mode=True)
    assert result.failed and 'wal_level=logical' in result['msg'] and 'wal_level=replica' in result['msg']
    result = slot_run(dict(primary.login_args(), name='cdc', slot_type='logical'))
    assert result.failed
    assert slots(primary) == {}


def test_unknown_output_plugin_fails_and_leaves_nothing(logical_primary):
    result = slot_run(dict(logical_primary.login_args(), name='bad', slot_type='logical',
                           output_plugin='no_such_plugin'))
    assert result.failed and 'Could not create replication slot bad' in result['msg']
    assert 'no_such_plugin' in result['msg']
    assert slots(logical_primary) == {}


def test_unreachable_and_wrong_password_fail_cleanly(primary):
    unreachable = slot_run(dict(primary.login_args(), login_port=free_port(), name='s1',
                                connect_timeout=2))
    assert unreachable.failed and 'Unable to connect' in unreachable['msg']
    assert 'login_' in unreachable['msg']

    wrong = slot_run(dict(primary.login_args(), login_password='not-the-Password-9', name='s1'))
    assert wrong.failed and 'password authentication failed' in wrong['msg']
    assert 'not-the-Password-9' not in json.dumps(wrong)
    assert slots(primary) == {}


def test_drop_active_slot_needs_terminate_active(pg_factory):
    primary = pg_factory.primary()
    assert slot_run(dict(primary.login_args(), name='s1', immediately_reserve=True)).changed
    standby = pg_factory.standby_of(primary, slot='s1')
    wait_for(lambda: slots(primary)['s1']['active'], what='standby streaming from slot s1')
    pid = slots(primary)['s1']['active_pid']
    absent = dict(primary.login_args(), name='s1', state='absent')

    refused = slot_run(absent)
    assert refused.failed and not refused.changed
    assert 'is active' in refused['msg'] and 'terminate_active=true' in refused['msg']
    assert slots(primary)['s1']['active'] is True

    refused_check = slot_run(absent, check_mode=True)
    assert refused_check.failed, 'check mode predicts the same failure'

    predicted = slot_run(dict(absent, terminate_active=True), check_mode=True)
    assert predicted.changed and not predicted.failed
    assert predicted['queries'] == ['SELECT pg_catalog.pg_terminate_backend(%d)' % pid,
                                    "SELECT pg_catalog.pg_drop_replication_slot('s1')"]
    assert slots(primary)['s1']['active_pid'] == pid, 'check mode must not terminate the walsender'

    dropped = slot_run(dict(absent, terminate_active=True))
    assert dropped.changed and not dropped.failed, dropped.get('msg')
    assert dropped['terminated_pid'] == pid
    assert 's1' not in slots(primary)
    assert standby.in_recovery() is True
    assert not slot_run(dict(absent, terminate_active=True)).changed
