"""rewind against real PostgreSQL servers: clone, promote, break the old primary, rejoin it."""
import hashlib
import json
import os

from tests.helpers.fixtures import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, run_module, wait_for
from tests.integration.test_standby_clone import clone_args


def tree_hash(path):
    """Names and contents of every file under ``path``."""
    digest = hashlib.sha1()
    for root, dirs, files in sorted(os.walk(path)):
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(full.encode())
            with open(full, 'rb') as handle:
                digest.update(handle.read())
    siblings = sorted(n for n in os.listdir(os.path.dirname(path))
                      if os.path.basename(path) in n and not n.endswith('.log'))
    return digest.hexdigest(), siblings


def dead(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
    except OSError:
        return True


def rewind_args(node, source, **extra):
    args = dict(data_directory=node.data_directory, bin_dir=node.bin_dir,
                source_host='127.0.0.1', source_port=source.port, source_user='postgres',
                source_password=SUPERUSER_PASSWORD, replication_user='replicator',
                replication_password=REPLICATION_PASSWORD, application_name='old_primary',
                settings={'port': node.port}, os_user=node.os_user or 'postgres')
    args.update(extra)
    return args


def no_secret(result):
    text = json.dumps(result)
    assert REPLICATION_PASSWORD not in text and SUPERUSER_PASSWORD not in text


def failover(pg_factory, primary_settings=None):
    """A primary, a standby cloned by standby_clone, the standby promoted, a diverging row on the old primary."""
    primary = pg_factory.primary(settings=primary_settings)
    standby = pg_factory.new_instance('standby')
    primary.sql('CREATE TABLE t (id int)')
    primary.sql('INSERT INTO t VALUES (1)')
    result = run_module('standby_clone', clone_args(primary, standby, start=True))
    assert not result.failed, result.get('msg', result)
    wait_for(lambda: standby.scalar('SELECT count(*) FROM t') == 1, what='standby caught up')
    assert standby.scalar('SELECT pg_promote()') is True
    wait_for(lambda: standby.in_recovery() is False, what='promotion')
    # the old primary keeps writing for a moment: its history diverges from the new primary's
    primary.sql('INSERT INTO t VALUES (666)')
    return primary, standby


def follows(node, new_primary, value):
    new_primary.sql('INSERT INTO t VALUES (%s)' % value)
    assert node.in_recovery() is True
    wait_for(lambda: node.scalar('SELECT count(*) FROM t WHERE id = %s' % value) == 1, what='row on rejoined node')
    assert node.scalar('SELECT count(*) FROM t WHERE id = 666') == 0  # the diverged write is gone
    wait_for(lambda: node.scalar("SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'")
             == new_primary.scalar('SELECT timeline_id FROM pg_control_checkpoint()'), what='same timeline')
    wait_for(lambda: new_primary.sql("SELECT 1 FROM pg_stat_replication WHERE application_name = 'old_primary'"),
             what='old primary in pg_stat_replication')


def test_rewind_after_crash(pg_factory):
    old, new = failover(pg_factory)
    with open(os.path.join(old.data_directory, 'postmaster.pid')) as handle:
        pid = int(handle.readline())
    old.kill9()
    wait_for(lambda: dead(pid), what='postmaster killed')

    before = tree_hash(old.data_directory)
    checked = run_module('rewind', rewind_args(old, new), check_mode=True)
    assert not checked.failed, checked.get('msg', checked)
    assert checked.changed and checked['method'] == 'rewind' and checked['crash_recovery']
    assert tree_hash(old.data_directory) == before

    result = run_module('rewind', rewind_args(old, new, start=True), diff=True)
    assert not result.failed, result.get('msg', result)
    assert result.changed and result['method'] == 'rewind' and result['fallback_reason'] is None
    assert result['crash_recovery'] is True
    assert result['old_timeline'] == 1 and result['source_timeline'] == 2
    assert any('pg_rewind' in c for c in result['commands'])
    no_secret(result)
    follows(old, new, 2)

    again = run_module('rewind', rewind_args(old, new, start=True))
    assert not again.failed, again.get('msg', again)
    assert not again.changed and again['method'] == 'none'
    assert again['old_timeline'] == 2


def test_rewind_after_clean_shutdown(pg_factory):
    old, new = failover(pg_factory)

    # a running server is refused without stop_server, and nothing changes
    refused = run_module('rewind', rewind_args(old, new))
    assert refused.failed and 'stop_server' in refused['msg']
    assert old.is_running() and old.in_recovery() is False

    # dry run on the cleanly stopped node touches nothing
    old.stop()
    before = tree_hash(old.data_directory)
    new.sql('CHECKPOINT')
    checked = run_module('rewind', rewind_args(old, new), check_mode=True)
    assert not checked.failed, checked.get('msg', checked)
    assert checked.changed and checked['method'] == 'rewind' and not checked['crash_recovery']
    assert 'diverged' in checked['dry_run_output']
    assert tree_hash(old.data_directory) == before

    # stop_server stops the running node (fast) and rewinds it
    old.start()
    result = run_module('rewind', rewind_args(old, new, stop_server=True, start=True))
    assert not result.failed, result.get('msg', result)
    assert result['method'] == 'rewind' and result['stopped'] and result['started']
    assert not result['crash_recovery']
    follows(old, new, 3)
    assert not run_module('rewind', rewind_args(old, new, stop_server=True, start=True)).changed


def test_bad_source_password_fails_before_any_change(pg_factory):
    old, new = failover(pg_factory)
    old.stop()
    before = tree_hash(old.data_directory)
    result = run_module('rewind', rewind_args(old, new, source_password='wrong', stop_server=True))
    assert result.failed and 'source_' in result['msg']
    no_secret(result)
    result = run_module('rewind', rewind_args(old, new, replication_password='wrong'))
    assert result.failed and 'replication_password' in result['msg']
    result = run_module('rewind', rewind_args(old, new, slot_name='nope'))
    assert result.failed and 'slot_name' in result['msg']
    assert tree_hash(old.data_directory) == before


def test_foreign_cluster_needs_fallback_then_is_recloned(pg_factory):
    new = pg_factory.primary(name='newprimary')
    new.sql('CREATE TABLE t (id int)')
    node = pg_factory.new_instance('node')
    node.initdb()  # another cluster: another system identifier
    before = tree_hash(node.data_directory)

    refused = run_module('rewind', rewind_args(node, new))
    assert refused.failed and 'another cluster' in refused['msg'] and 'fallback' in refused['msg']
    assert tree_hash(node.data_directory) == before

    checked = run_module('rewind', rewind_args(node, new, fallback='reclone'), check_mode=True)
    assert checked.changed and checked['method'] == 'reclone'
    assert tree_hash(node.data_directory) == before

    result = run_module('rewind', rewind_args(node, new, fallback='reclone', start=True))
    assert not result.failed, result.get('msg', result)
    assert result['method'] == 'reclone' and 'another cluster' in result['fallback_reason']
    assert result['moved_aside_to'] and os.path.isfile(os.path.join(result['moved_aside_to'], 'PG_VERSION'))
    new.sql('INSERT INTO t VALUES (7)')
    wait_for(lambda: node.scalar('SELECT count(*) FROM t WHERE id = 7') == 1, what='row on recloned node')
    assert not run_module('rewind', rewind_args(node, new, fallback='reclone', start=True)).changed


def test_no_wal_log_hints_falls_back_to_reclone(pg_factory):
    old, new = failover(pg_factory, primary_settings={'wal_log_hints': 'off'})
    old.stop()
    refused = run_module('rewind', rewind_args(old, new))
    assert refused.failed and 'wal_log_hints' in refused['msg']
    result = run_module('rewind', rewind_args(old, new, fallback='reclone', start=True))
    assert not result.failed, result.get('msg', result)
    assert result['method'] == 'reclone' and 'wal_log_hints' in result['fallback_reason']
    assert result['bytes_copied'] > 0
    follows(old, new, 4)


def test_crashed_node_with_configuration_outside_the_data_directory(pg_factory, tmp_path):
    """Debian layout: postgresql.conf under /etc; crash recovery must be given config_file."""
    old, new = failover(pg_factory)
    with open(os.path.join(old.data_directory, 'postmaster.pid')) as handle:
        pid = int(handle.readline())
    old.kill9()
    wait_for(lambda: dead(pid), what='postmaster killed')
    etc = tmp_path / 'etc'
    etc.mkdir()
    config_file = str(etc / 'postgresql.conf')
    os.rename(os.path.join(old.data_directory, 'postgresql.conf'), config_file)
    os.chmod(str(etc), 0o755)
    os.chmod(config_file, 0o644)

    # without config_file the single-user crash recovery cannot find the configuration: a clear failure
    missing = run_module('rewind', rewind_args(old, new))
    assert missing.failed and 'pg_rewind failed' in missing['msg'] and 'set config_file' in missing['msg']

    result = run_module('rewind', rewind_args(old, new, config_file=config_file, start=True))
    assert not result.failed, result.get('msg', result)
    assert result['method'] == 'rewind' and result['crash_recovery'] is True
    assert any('--config-file' in c for c in result['commands'])
    follows(old, new, 5)
