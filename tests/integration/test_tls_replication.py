"""standby_clone and rewind over TLS with the server certificate verified (sslmode=verify-full)."""
import os

from tests.helpers.fixtures import run_module, wait_for
from tests.helpers.tls import make_ca, make_server_cert
from tests.integration.test_rewind import follows, rewind_args
from tests.integration.test_standby_clone import clone_args, snapshot

WAL_SENDERS_OVER_TLS = ("SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
                        "WHERE s.ssl AND r.state = 'streaming'")


def tls_primary(pg_factory, tmp_path):
    ca = make_ca(str(tmp_path / 'pki'))
    settings = make_server_cert(str(tmp_path / 'pki'), ca, owner=pg_factory.os_user)
    return pg_factory.primary(settings=settings), ca[0]


def test_clone_and_rewind_verify_the_upstream_certificate(pg_factory, tmp_path):
    primary, ca_cert = tls_primary(pg_factory, tmp_path)
    standby = pg_factory.new_instance('standby')
    primary.sql('CREATE TABLE t (id int)')
    primary.sql('INSERT INTO t VALUES (1)')
    verified = dict(primary_ssl_mode='verify-full', primary_ssl_root_cert=ca_cert, start=True)

    result = run_module('standby_clone', clone_args(primary, standby, **verified))
    assert not result.failed, result.get('msg', result)
    assert 'sslmode=verify-full' in result['primary_conninfo']
    assert 'sslrootcert=%s' % ca_cert in result['primary_conninfo']
    assert any('sslrootcert=' in c for c in result['commands'] if 'pg_basebackup' in c)
    wait_for(lambda: primary.scalar(WAL_SENDERS_OVER_TLS) == 1, what='the standby streaming over TLS')
    again = run_module('standby_clone', clone_args(primary, standby, **verified))
    assert not again.failed and not again.changed, again

    # Failover, then the old primary rejoins: pg_rewind and its primary_conninfo verify the new primary too.
    assert standby.scalar('SELECT pg_promote()') is True
    wait_for(lambda: standby.in_recovery() is False, what='promotion')
    primary.sql('INSERT INTO t VALUES (666)')
    primary.stop()
    rejoined = run_module('rewind', rewind_args(primary, standby, start=True, source_ssl_mode='verify-full',
                                                source_ssl_root_cert=ca_cert))
    assert not rejoined.failed, rejoined.get('msg', rejoined)
    assert rejoined['method'] == 'rewind'
    assert 'sslrootcert=%s' % ca_cert in rejoined['primary_conninfo']
    follows(primary, standby, 2)
    wait_for(lambda: standby.scalar(WAL_SENDERS_OVER_TLS) == 1, what='the old primary streaming over TLS')


def test_an_unverifiable_upstream_is_refused_before_any_change(pg_factory, tmp_path):
    primary, dummy = tls_primary(pg_factory, tmp_path)
    standby = pg_factory.new_instance('standby')
    other_ca = make_ca(str(tmp_path / 'other'), name='other-ca')[0]
    before = snapshot(standby.data_directory)

    wrong_ca = run_module('standby_clone', clone_args(primary, standby, primary_ssl_mode='verify-full',
                                                      primary_ssl_root_cert=other_ca))
    assert wrong_ca.failed and 'certificate verify failed' in wrong_ca['msg'], wrong_ca
    missing = run_module('standby_clone', clone_args(primary, standby, primary_ssl_mode='verify-ca',
                                                     primary_ssl_root_cert=str(tmp_path / 'absent.crt')))
    assert missing.failed and 'primary_ssl_root_cert' in missing['msg'] and 'not a file' in missing['msg']
    assert snapshot(standby.data_directory) == before
    assert not os.path.exists(standby.data_directory)

    node = pg_factory.primary('other_node')
    rewind_missing = run_module('rewind', rewind_args(node, primary, source_ssl_root_cert=str(tmp_path / 'x.crt')))
    assert rewind_missing.failed and 'source_ssl_root_cert' in rewind_missing['msg']
    assert node.in_recovery() is False
