"""A standalone PostgreSQL instance built by the postgresql role."""
import os

import pytest

SERVICE = 'postgresql@15-main'
CONF_DIR = '/etc/postgresql/15/main'


def psql(host, sql, db='postgres', port=5432):
    cmd = host.run("runuser -u postgres -- psql -XAtq -p %d -d %s -c %s" % (port, db, _quote(sql)))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_service_active_and_enabled(host):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled


def test_clusters(host):
    """The role made one cluster, main; side_effect.yml made 'legacy' and 'fresh' and ran the
    role in install-only mode on each: 'fresh' (empty) was dropped, 'legacy' (with data) kept."""
    clusters = {line.split()[1]: line.split()[3] for line in host.check_output('pg_lsclusters -h').splitlines()}
    assert clusters == {'main': 'online', 'legacy': 'online'}


def test_cluster_with_data_survived_the_refused_deploy(host):
    assert psql(host, 'SELECT item FROM orders', db='shop', port=5433) == 'kept'
    refusal = host.file('/root/pgha-refusal.txt').content_string
    assert 'Refusing to drop PostgreSQL cluster 15/legacy' in refusal
    assert 'postgresql_drop_existing_cluster=true' in refusal
    assert '1 user database(s)' in refusal


@pytest.mark.parametrize('name,value', [
    ('max_connections', '50'),
    ('shared_buffers', '64MB'),
    ('log_min_duration_statement', '500ms'),
    ('wal_log_hints', 'on'),
    ('password_encryption', 'scram-sha-256'),
    ('wal_level', 'replica'),
    ('ssl', 'on'),
    ('data_checksums', 'on'),
])
def test_settings_applied(host, name, value):
    assert psql(host, 'SHOW %s' % name) == value


def test_nothing_waits_for_a_restart(host):
    assert psql(host, 'SELECT count(*) FROM pg_settings WHERE pending_restart') == '0'


def test_pg_hba_has_no_trust_and_uses_scram(host):
    hba = host.file(CONF_DIR + '/pg_hba.conf')
    assert hba.mode == 0o640
    lines = [line.split() for line in hba.content_string.splitlines()
             if line.strip() and not line.startswith('#')]
    assert lines
    assert not [line for line in lines if 'trust' in line or 'md5' in line or 'password' in line]
    assert any(line[1] == 'replication' and line[-1] == 'scram-sha-256' for line in lines)
    # pg_hba.conf as the server parsed it, without errors
    assert psql(host, 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL') == '0'
    # the extra line of converge.yml, as the server parsed it
    assert psql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'hostssl' AND database = '{app}' "
                      "AND user_name = '{app}' AND address = 'samenet' AND auth_method = 'scram-sha-256'") == '1'


def test_accounts(host):
    rows = psql(host, "SELECT rolname, rolreplication, rolsuper FROM pg_roles "
                      "WHERE rolname IN ('replicator','rewind','monitor','app') ORDER BY 1").splitlines()
    assert rows == ['app|f|f', 'monitor|f|f', 'replicator|t|f', 'rewind|f|f']
    assert psql(host, "SELECT pg_has_role('monitor', 'pg_monitor', 'member')") == 't'
    assert psql(host, "SELECT pg_has_role('rewind', 'pg_checkpoint', 'member')") == 't'
    assert psql(host, "SELECT has_function_privilege('rewind', "
                      "'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE')") == 't'
    assert psql(host, "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'") == 'app'
    # every password is stored as a SCRAM verifier
    assert psql(host, "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL "
                      "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'") == '0'


def test_tls_files_modes(host):
    key = host.file(CONF_DIR + '/tls/server.key')
    assert key.user == 'postgres' and key.mode == 0o600
    assert host.file(CONF_DIR + '/tls/server.crt').mode == 0o644


def secret(name):
    """A password generated for this scenario by inventories/lab/group_vars/all/secrets.yml."""
    path = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'secrets', name)
    with open(path) as handle:
        return handle.read().split(' salt=')[0].strip()


def test_tls_verify_full_connection(host):
    """libpq checks the chain against the lab CA and the host name against the certificate."""
    conninfo = ("host=%s dbname=app user=app sslmode=verify-full sslrootcert=%s/tls/ca.crt connect_timeout=5"
                % (host.backend.get_hostname(), CONF_DIR))
    cmd = host.run("PGPASSWORD=%s psql -XAtq %s -c %s" % (
        _quote(secret('app')), _quote(conninfo),
        _quote('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()')))
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip().startswith('t|TLSv1.')


def test_wrong_password_is_refused(host):
    cmd = host.run("PGPASSWORD=wrong psql -XAtq 'host=%s dbname=app user=app connect_timeout=5' -c 'SELECT 1'"
                   % host.backend.get_hostname())
    assert cmd.rc != 0
    assert 'password authentication failed' in cmd.stderr


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()
