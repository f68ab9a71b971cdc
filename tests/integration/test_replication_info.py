"""pgha.cluster.replication_info against a real primary and standby on loopback."""
import json

from tests.helpers.fixtures import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, free_port, run_module, wait_for


def info(pg, check_mode=False, **extra):
    args = dict(pg.login_args(), **extra)
    result = run_module('replication_info', args, check_mode=check_mode)
    text = json.dumps(result)
    assert SUPERUSER_PASSWORD not in text and REPLICATION_PASSWORD not in text
    assert not result.changed
    return result


def test_primary_and_standby_facts_lag_and_promotion(pg_factory):
    primary = pg_factory.primary()
    primary.sql("SELECT pg_create_physical_replication_slot('node2', true)")
    standby = pg_factory.standby_of(primary, slot='node2')
    wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL") == 1,
             what='standby streaming')

    p = info(primary)
    assert not p.failed, p
    assert p['role'] == 'primary' and p['in_recovery'] is False
    assert p['server_version_num'] == int(primary.scalar('SHOW server_version_num'))
    assert p['system_identifier'] == primary.scalar('SELECT system_identifier::text FROM pg_control_system()')
    assert p['timeline'] == 1 and p['timeline_source'] == 'pg_walfile_name'
    assert p['wal']['current_lsn'] and p['wal']['receive_lsn'] is None
    assert p['lag'] == {'replay_seconds': None, 'replay_bytes': None, 'receive_bytes': None}
    assert len(p['replication']) == 1
    row = p['replication'][0]
    assert row['state'] == 'streaming' and row['usename'] == 'replicator'
    assert row['client_addr'] == '127.0.0.1' and row['sync_state'] == 'async'
    assert isinstance(row['replay_lag_bytes'], int)
    assert [s['slot_name'] for s in p['replication_slots']] == ['node2']
    assert p['replication_slots'][0]['active'] is True
    assert p['wal_receiver'] == {}
    assert p['synchronous_standby_names'] == ''
    assert p['settings']['wal_level'] == 'replica'
    assert p['pending_restart'] == []

    s = info(standby, check_mode=True)
    assert s['role'] == 'standby' and s['in_recovery'] is True
    assert s['system_identifier'] == p['system_identifier']
    assert s['timeline'] == 1 and s['timeline_source'] == 'pg_stat_wal_receiver'
    assert s['wal']['current_lsn'] is None and s['wal']['replay_lsn']
    receiver = s['wal_receiver']
    assert receiver['status'] == 'streaming'
    assert receiver['sender_host'] == '127.0.0.1' and receiver['sender_port'] == primary.port
    assert receiver['slot_name'] == 'node2'
    assert 'password=********' in s['settings']['primary_conninfo']
    assert s['replication'] == []

    # Lag: replay one transaction (so pg_last_xact_replay_timestamp() is set),
    # pause replay on the standby, write on the primary.
    primary.sql('CREATE TABLE before_pause (id int)')
    wait_for(lambda: standby.scalar('SELECT pg_last_xact_replay_timestamp() IS NOT NULL'),
             what='a replayed transaction')
    standby.sql('SELECT pg_wal_replay_pause()')
    primary.sql('CREATE TABLE lag_probe AS SELECT g FROM generate_series(1, 20000) g')
    target = primary.scalar('SELECT pg_current_wal_lsn()::text')
    wait_for(lambda: standby.scalar('SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn', (target,)),
             what='standby received the writes')
    lagging = info(standby)
    assert lagging['wal']['replay_paused'] is True
    assert lagging['lag']['replay_bytes'] > 0
    assert lagging['lag']['replay_seconds'] > 0
    assert lagging['lag']['replay_bytes'] == int(standby.scalar(
        'SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())'))
    wait_for(lambda: info(primary)['replication'][0]['replay_lag_bytes'] > 0, what='lag seen on primary')
    standby.sql('SELECT pg_wal_replay_resume()')
    wait_for(lambda: info(standby)['lag']['replay_bytes'] == 0, what='standby caught up')
    assert info(standby)['lag']['replay_seconds'] == 0

    # Pending restart.
    primary.sql('ALTER SYSTEM SET max_connections = 42')
    primary.sql('SELECT pg_reload_conf()')
    wait_for(lambda: info(primary)['pending_restart'], what='pending restart')
    assert [r['name'] for r in info(primary)['pending_restart']] == ['max_connections']

    # Promotion: the timeline changes and the module sees it at once, although
    # pg_control_checkpoint() may still report the old timeline.
    standby.sql('SELECT pg_promote(true, 60)')
    promoted = info(standby)
    assert promoted['role'] == 'primary'
    assert promoted['timeline'] == 2 and promoted['timeline_source'] == 'pg_walfile_name'
    assert promoted['system_identifier'] == p['system_identifier']
    assert promoted['wal_receiver'] == {}


def test_unreachable_server_fails_clearly(pg_factory):
    primary = pg_factory.primary()
    result = run_module('replication_info', dict(primary.login_args(), login_port=free_port(),
                                                 connect_timeout=2))
    assert result.failed and 'Unable to connect' in result['msg']
    wrong = run_module('replication_info', dict(primary.login_args(), login_password='wrong-Pw-7'))
    assert wrong.failed and 'password authentication failed' in wrong['msg']
    assert 'wrong-Pw-7' not in json.dumps(wrong)


def test_monitoring_role_without_superuser(pg_factory):
    primary = pg_factory.primary()
    primary.sql("CREATE ROLE monitor LOGIN PASSWORD 'Monitor-pw-8' IN ROLE pg_monitor")
    result = run_module('replication_info', dict(primary.login_args(), login_user='monitor',
                                                 login_password='Monitor-pw-8'))
    assert not result.failed, result
    assert result['role'] == 'primary' and result['timeline'] == 1
    assert result['system_identifier'].isdigit()
    assert 'Monitor-pw-8' not in json.dumps(result)
