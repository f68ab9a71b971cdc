"""standby_clone against real PostgreSQL servers on loopback."""
import hashlib
import json
import os
import stat
import subprocess

import pytest

from tests.helpers.fixtures import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, run_module, wait_for


def clone_args(primary, standby, **extra):
    args = dict(data_directory=standby.data_directory, bin_dir=primary.bin_dir,
                primary_host='127.0.0.1', primary_port=primary.port,
                replication_user=primary.replication_user, replication_password=REPLICATION_PASSWORD,
                application_name='sb1', settings={'port': standby.port},
                os_user=standby.os_user or os.environ.get('USER', 'postgres'))
    args.update(extra)
    return args


def snapshot(path):
    """Entries next to ``path`` named after it, and every file under it (with a content hash)."""
    parent, base = os.path.dirname(path), os.path.basename(path)
    state = {'siblings': sorted(n for n in os.listdir(parent) if base in n and not n.endswith('.log'))}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            state[os.path.relpath(os.path.join(root, name), parent)] = 'dir'
        for name in files:
            full = os.path.join(root, name)
            with open(full, 'rb') as handle:
                state[os.path.relpath(full, parent)] = hashlib.sha1(handle.read()).hexdigest()
    return state


def no_secret(result):
    text = json.dumps(result)
    assert REPLICATION_PASSWORD not in text
    assert SUPERUSER_PASSWORD not in text


def test_clone_makes_a_streaming_standby_and_is_idempotent(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    primary.sql('CREATE TABLE t (id int)')

    result = run_module('standby_clone', clone_args(primary, standby, slot_name='sb1_slot', create_slot=True,
                                                    start=True), diff=True)
    assert not result.failed, result.get('msg', result)
    assert result.changed and result['action'] == 'cloned' and result['started']
    assert result['system_identifier'] == primary.scalar(
        'SELECT system_identifier::text FROM pg_control_system()')
    assert result['bytes_copied'] > 10 * 1024 * 1024
    assert result['moved_aside_to'] is None
    assert any('pg_basebackup' in c for c in result['commands'])
    no_secret(result)

    # the standby streams, through its slot, under its application_name
    assert standby.in_recovery() is True
    primary.sql('INSERT INTO t VALUES (1)')
    wait_for(lambda: standby.scalar('SELECT count(*) FROM t') == 1, what='row on the standby')
    wait_for(lambda: primary.sql("SELECT 1 FROM pg_stat_replication WHERE application_name = 'sb1' "
                                 "AND state = 'streaming'"), what='pg_stat_replication row')
    slot = primary.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'sb1_slot'")
    assert slot and slot[0]['active'] is True

    # the password lives in a 0600 passfile owned by the server user, never in the config
    passfile = result['passfile']
    assert passfile == os.path.join(os.path.dirname(standby.data_directory), '.pgpass_standby')
    st = os.stat(passfile)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if standby.os_user:
        import pwd
        assert st.st_uid == pwd.getpwnam(standby.os_user).pw_uid
    with open(os.path.join(standby.data_directory, 'postgresql.auto.conf')) as handle:
        auto_conf = handle.read()
    assert 'passfile=' in auto_conf and REPLICATION_PASSWORD not in auto_conf
    assert "primary_slot_name = 'sb1_slot'" in auto_conf
    assert not [n for n in os.listdir(os.path.dirname(standby.data_directory)) if '.pgha-clone-' in n]

    # second run: nothing to do
    again = run_module('standby_clone', clone_args(primary, standby, slot_name='sb1_slot', create_slot=True,
                                                   start=True))
    assert not again.failed, again.get('msg', again)
    assert not again.changed and again['action'] == 'unchanged' and again['bytes_copied'] == 0
    no_secret(again)


def test_check_mode_changes_nothing(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    before = snapshot(standby.data_directory)
    result = run_module('standby_clone', clone_args(primary, standby, slot_name='s', create_slot=True),
                        check_mode=True, diff=True)
    assert not result.failed, result.get('msg', result)
    assert result.changed and result['action'] == 'cloned'
    assert not os.path.exists(standby.data_directory)
    assert snapshot(standby.data_directory) == before
    assert not primary.sql("SELECT 1 FROM pg_replication_slots")
    assert not os.path.exists(result['passfile'])

    # check mode still validates the credentials against the primary
    bad = run_module('standby_clone', clone_args(primary, standby, replication_password='wrong'), check_mode=True)
    assert bad.failed and 'replication_password' in bad['msg']


def test_conninfo_and_slot_corrected_in_place(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    assert not run_module('standby_clone', clone_args(primary, standby, start=True)).failed
    primary.sql("SELECT pg_create_physical_replication_slot('sb2_slot')")
    auto_conf = os.path.join(standby.data_directory, 'postgresql.auto.conf')
    with open(auto_conf) as handle:
        original = handle.read()

    new_args = clone_args(primary, standby, application_name='sb2', slot_name='sb2_slot', start=True)
    checked = run_module('standby_clone', new_args, check_mode=True, diff=True)
    assert checked.changed and checked['action'] == 'reconfigured'
    with open(auto_conf) as handle:
        assert handle.read() == original

    result = run_module('standby_clone', new_args, diff=True)
    assert not result.failed, result.get('msg', result)
    assert result.changed and result['action'] == 'reconfigured'
    assert result['changed_settings'] == ['primary_conninfo', 'primary_slot_name']
    assert result['reload_required'] and result['reloaded'] and result['restart_required'] == []
    assert 'application_name=sb1' in result['diff']['before']
    assert 'application_name=sb2' in result['diff']['after']
    assert result['bytes_copied'] == 0
    no_secret(result)
    # PG13+: primary_conninfo is reloadable, the WAL receiver reconnects with the new settings
    wait_for(lambda: primary.sql("SELECT 1 FROM pg_stat_replication WHERE application_name = 'sb2'"),
             what='standby reconnected as sb2')
    wait_for(lambda: primary.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'sb2_slot'"),
             what='slot sb2_slot in use')
    assert not run_module('standby_clone', new_args).changed


def test_rotated_password_updates_passfile_only(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    assert not run_module('standby_clone', clone_args(primary, standby)).failed
    primary.sql("ALTER ROLE replicator PASSWORD 'rotated-Pw3'")
    result = run_module('standby_clone', clone_args(primary, standby, replication_password='rotated-Pw3'))
    assert not result.failed, result.get('msg', result)
    assert result.changed and result['passfile_changed'] and result['changed_settings'] == []
    with open(result['passfile']) as handle:
        assert handle.read().strip().endswith(':rotated-Pw3')


@pytest.mark.parametrize('case', ['bin_dir', 'unreachable', 'password', 'foreign', 'junk', 'slot'])
def test_bad_input_fails_before_any_change(pg_factory, tmp_path, case):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    args = clone_args(primary, standby)
    if case == 'bin_dir':
        args['bin_dir'] = str(tmp_path / 'no-such-bin')
    elif case == 'unreachable':
        args['primary_port'] = 1
    elif case == 'password':
        args['replication_password'] = 'wrong'
    elif case == 'foreign':
        standby.initdb()
    elif case == 'junk':
        os.makedirs(standby.data_directory)
        with open(os.path.join(standby.data_directory, 'notes.txt'), 'w') as handle:
            handle.write('precious\n')
    elif case == 'slot':
        args['slot_name'] = 'missing_slot'
    before = snapshot(standby.data_directory)
    result = run_module('standby_clone', args)
    assert result.failed
    expected = {'bin_dir': 'bin_dir', 'unreachable': 'primary_host', 'password': 'replication_password',
                'foreign': 'force', 'junk': 'force', 'slot': 'create_slot'}[case]
    assert expected in result['msg'], result['msg']
    no_secret(result)
    assert snapshot(standby.data_directory) == before
    assert not os.path.exists(os.path.join(os.path.dirname(standby.data_directory), '.pgpass_standby'))
    assert not primary.sql('SELECT 1 FROM pg_replication_slots')


def test_running_server_is_refused_even_with_force(pg_factory):
    primary = pg_factory.primary()
    other = pg_factory.primary(name='other')
    before = snapshot(other.data_directory)
    result = run_module('standby_clone', clone_args(primary, other, force=True))
    assert result.failed and 'running' in result['msg'] and 'stop it' in result['msg']
    assert other.is_running()
    assert snapshot(other.data_directory).keys() == before.keys()


def test_force_moves_a_foreign_cluster_aside(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    standby.initdb()
    with open(os.path.join(standby.data_directory, 'marker'), 'w') as handle:
        handle.write('old cluster\n')
    result = run_module('standby_clone', clone_args(primary, standby, force=True, start=True))
    assert not result.failed, result.get('msg', result)
    assert result['action'] == 'cloned'
    moved = result['moved_aside_to']
    assert moved and moved.startswith(standby.data_directory + '.pgha-moved-')
    with open(os.path.join(moved, 'marker')) as handle:
        assert handle.read() == 'old cluster\n'
    assert not os.path.exists(os.path.join(standby.data_directory, 'marker'))
    assert standby.in_recovery() is True


def test_failed_clone_leaves_no_half_written_directory(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    os.makedirs(standby.data_directory)
    if standby.os_user:
        os.system('chown %s %s' % (standby.os_user, standby.data_directory))
    # an invalid transfer rate makes pg_basebackup fail after the checks passed
    result = run_module('standby_clone', clone_args(primary, standby, max_rate='1'))
    assert result.failed and 'pg_basebackup failed' in result['msg']
    no_secret(result)
    assert os.listdir(standby.data_directory) == []
    parent = os.path.dirname(standby.data_directory)
    assert not [n for n in os.listdir(parent) if '.pgha-clone-' in n or n.startswith('pgha-pass-')]


def test_diverged_former_primary_with_standby_signal_is_refused(pg_factory):
    """Issue 10 item 4: a former primary that wrote after the failover cannot just be repointed."""
    from tests.integration.test_rewind import failover
    old, new = failover(pg_factory)  # old wrote row 666 on timeline 1 after new was promoted
    old.stop()
    open(os.path.join(old.data_directory, 'standby.signal'), 'w').close()
    if old.os_user:
        os.system('chown %s %s' % (old.os_user, os.path.join(old.data_directory, 'standby.signal')))
    args = clone_args(new, old, application_name='old_primary')
    before = snapshot(old.data_directory)
    for check_mode in (True, False):
        refused = run_module('standby_clone', args, check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'cannot follow the primary' in refused['msg'] and 'timeline 1' in refused['msg']
        assert 'pgha.cluster.rewind' in refused['msg'] and 'force' in refused['msg']
        no_secret(refused)
        assert snapshot(old.data_directory) == before
    assert not old.is_running()

    # force: moved aside and cloned afresh; it streams on the new primary's timeline without the diverged row
    done = run_module('standby_clone', dict(args, force=True, start=True))
    assert not done.failed, done.get('msg', done)
    assert done['action'] == 'cloned' and done['moved_aside_to']
    new.sql('INSERT INTO t VALUES (50)')
    wait_for(lambda: old.scalar('SELECT count(*) FROM t WHERE id = 50') == 1, what='row on the re-cloned node')
    assert old.scalar('SELECT count(*) FROM t WHERE id = 666') == 0
    wait_for(lambda: old.scalar("SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 2,
             what='streaming on timeline 2')


def test_standby_of_the_old_primary_is_repointed_after_a_failover(pg_factory):
    """The case next to item 4 that must keep working: a standby that did not diverge follows the new primary."""
    primary = pg_factory.primary()
    primary.sql('CREATE TABLE t (id int)')
    s1 = pg_factory.standby_of(primary, name='s1')
    s2 = pg_factory.new_instance('s2')
    assert not run_module('standby_clone', clone_args(primary, s2, start=True)).failed
    primary.sql('INSERT INTO t VALUES (1)')
    wait_for(lambda: s2.scalar('SELECT count(*) FROM t') == 1 and s1.scalar('SELECT count(*) FROM t') == 1,
             what='both standbys caught up')
    primary.stop()  # a clean stop sends everything to both standbys
    assert s1.scalar('SELECT pg_promote()') is True
    wait_for(lambda: s1.in_recovery() is False, what='promotion')
    started = s2.scalar('SELECT pg_postmaster_start_time()')

    result = run_module('standby_clone', clone_args(s1, s2, start=True))
    assert not result.failed, result.get('msg', result)
    assert result['action'] == 'reconfigured' and result['reloaded']
    s1.sql('INSERT INTO t VALUES (2)')
    wait_for(lambda: s2.scalar('SELECT count(*) FROM t WHERE id = 2') == 1, what='row from the new primary')
    wait_for(lambda: s2.scalar("SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 2,
             what='streaming on timeline 2')
    assert s2.scalar('SELECT pg_postmaster_start_time()') == started


def test_binaries_of_another_major_version_are_refused(pg_factory, tmp_path):
    """Issue 10 item 6: a standby needs the primary's major version, not whatever is installed."""
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    # Binaries that say they are PostgreSQL 13, as /usr/lib/postgresql/13/bin would on a host with several majors.
    fake = tmp_path / 'pg13' / 'bin'
    fake.mkdir(parents=True)
    for name in ('postgres', 'pg_ctl', 'pg_basebackup', 'pg_controldata'):
        script = fake / name
        script.write_text('#!/bin/sh\necho "%s (PostgreSQL) 13.16"\n' % name)
        script.chmod(0o755)
    before = snapshot(standby.data_directory)
    for check_mode in (True, False):
        refused = run_module('standby_clone', clone_args(primary, standby, bin_dir=str(fake), slot_name='s13',
                                                         create_slot=True, start=True), check_mode=check_mode)
        assert refused.failed and not refused.changed, refused
        assert 'PostgreSQL 13' in refused['msg'] and 'runs PostgreSQL 15' in refused['msg']
        assert 'postgresql-15' in refused['msg'] and 'bin_dir' in refused['msg']
        assert snapshot(standby.data_directory) == before
    assert not primary.sql('SELECT 1 FROM pg_replication_slots')
    assert not os.path.exists(os.path.join(os.path.dirname(standby.data_directory), '.pgpass_standby'))

    # without bin_dir the module picks the primary's major version
    done = run_module('standby_clone', dict(clone_args(primary, standby, start=True), bin_dir=None))
    assert not done.failed, done.get('msg', done)
    assert any('/15/bin/pg_basebackup' in c for c in done['commands'])
    assert standby.in_recovery() is True


def mount_tmpfs(path):
    os.makedirs(path)
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256m', 'pgha-test', path],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip('cannot mount a tmpfs here')


def test_clone_into_an_empty_mount_point(pg_factory):
    """Issue 10 item 7: the data directory is a mount point; the copy must land on that file system."""
    primary = pg_factory.primary()
    primary.sql('CREATE TABLE t (id int)')
    standby = pg_factory.new_instance('standby')
    mount_tmpfs(standby.data_directory)
    try:
        parent = os.path.dirname(standby.data_directory)
        result = run_module('standby_clone', clone_args(primary, standby, start=True))
        assert not result.failed, result.get('msg', result)
        assert result['action'] == 'cloned' and result['moved_aside_to'] is None
        assert os.path.ismount(standby.data_directory)
        assert not [n for n in os.listdir(parent) if '.pgha-clone-' in n]
        primary.sql('INSERT INTO t VALUES (1)')
        wait_for(lambda: standby.scalar('SELECT count(*) FROM t') == 1, what='row on the standby')
        assert not run_module('standby_clone', clone_args(primary, standby, start=True)).changed

        # a mount point that holds a cluster cannot be moved aside: refused before anything changes
        standby.stop()
        other = pg_factory.primary(name='other')
        before = snapshot(standby.data_directory)
        for check_mode in (True, False):
            refused = run_module('standby_clone', clone_args(other, standby, force=True), check_mode=check_mode)
            assert refused.failed and 'mount point' in refused['msg'], refused
            assert snapshot(standby.data_directory) == before
    finally:
        standby.stop(mode='immediate', check=False)
        subprocess.run(['umount', standby.data_directory], capture_output=True, check=False)


def test_check_mode_predicts_the_start_of_a_stopped_standby(pg_factory):
    """Issue 10 item 9: check mode said 'no change' where the real run starts the standby."""
    primary = pg_factory.primary()
    standby = pg_factory.new_instance('standby')
    assert not run_module('standby_clone', clone_args(primary, standby, start=True)).failed
    standby.stop()
    args = clone_args(primary, standby, start=True)
    checked = run_module('standby_clone', args, check_mode=True)
    assert not checked.failed and checked.changed and checked['started'], checked
    assert checked['action'] == 'unchanged'
    assert not standby.is_running()
    done = run_module('standby_clone', args)
    assert done.changed and done['started'] and standby.in_recovery() is True
    again = run_module('standby_clone', args, check_mode=True)
    assert not again.changed and not again['started']
