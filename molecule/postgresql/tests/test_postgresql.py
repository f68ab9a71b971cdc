"""A standalone PostgreSQL instance built by the postgresql role."""
import os
import shlex

import pytest

import pgha_nodes

SERVICE = 'postgresql@15-main'
CONF_DIR = '/etc/postgresql/15/main'


def psql(host, sql, db='postgres', port=5432):
    return pgha_nodes.psql(host, sql, database=db, connection='-p %d' % port)


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
        shlex.quote(secret('app')), shlex.quote(conninfo),
        shlex.quote('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()')))
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip().startswith('t|TLSv1.')


def test_wrong_password_is_refused(host):
    cmd = host.run("PGPASSWORD=wrong psql -XAtq 'host=%s dbname=app user=app connect_timeout=5' -c 'SELECT 1'"
                   % host.backend.get_hostname())
    assert cmd.rc != 0
    assert 'password authentication failed' in cmd.stderr


EXPORTER = 'prometheus-postgres-exporter'
EXPORTER_SETTINGS = '/etc/default/prometheus-postgres-exporter'


def member_address(host):
    """The node's address on the lab network: the source of its default route (nothing is sent)."""
    words = host.check_output('ip -4 route get 192.0.2.1').split()
    return words[words.index('src') + 1]


def scrape(host, url):
    """GET the URL on the node itself (the lab image has python3, not curl)."""
    cmd = host.run("python3 -c %s" % shlex.quote(
        'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())')
        + ' ' + shlex.quote(url))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def test_exporter_active_and_enabled(host):
    service = host.service(EXPORTER)
    assert service.is_running
    assert service.is_enabled


def test_exporter_listens_on_the_member_address_only(host):
    """Not on every interface: the metrics have no authentication."""
    listening = [line.split()[3] for line in host.check_output('ss -Hltn').splitlines()]
    assert '%s:9187' % member_address(host) in listening, listening
    assert not [address for address in listening if address.endswith(':9187') and address.rsplit(':', 1)[0] in
                ('0.0.0.0', '*', '[::]', '127.0.0.1')], listening


def test_exporter_reports_the_server(host):
    metrics = scrape(host, 'http://%s:9187/metrics' % member_address(host)).splitlines()
    assert 'pg_up 1' in metrics
    assert 'pg_exporter_last_scrape_error 0' in metrics
    # pg_stat_database through the monitoring account (pg_monitor), for the databases of converge.yml too
    commits = [line for line in metrics if line.startswith('pg_stat_database_xact_commit{')]
    assert any('datname="postgres"' in line for line in commits), commits
    assert any('datname="app"' in line for line in commits), commits
    assert any(line.startswith('pg_stat_bgwriter_') for line in metrics)


def test_exporter_logs_in_as_the_monitoring_account_over_the_socket(host):
    rows = psql(host, "SELECT usename, client_addr IS NULL FROM pg_stat_activity WHERE usename = 'monitor'")
    assert rows.splitlines() and all(row == 'monitor|t' for row in rows.splitlines()), rows


def test_exporter_settings_are_closed_to_others(host):
    """They hold the monitoring password: root:prometheus 0640, and a URL (the exporter logs it without the password)."""
    settings = host.file(EXPORTER_SETTINGS)
    assert (settings.user, settings.group, settings.mode) == ('root', 'prometheus', 0o640)
    content = settings.content_string
    assert "DATA_SOURCE_NAME='postgresql://monitor:%s@/postgres?host=%%2Fvar%%2Frun%%2Fpostgresql&port=5432" % (
        secret('monitoring')) in content
    assert "ARGS='--web.listen-address=%s:9187'" % member_address(host) in content
    assert host.file('/etc/systemd/system/%s.service.d/pgha.conf' % EXPORTER).contains('After=network-online.target')


def test_exporter_logged_the_outage_without_the_password(host):
    """side_effect.yml stopped PostgreSQL under the exporter: the connection error it logged names the
    server with the password replaced, and it then reported the server again without a restart."""
    journal = host.check_output('journalctl -u %s -o cat --no-pager' % EXPORTER)
    errors = [line for line in journal.splitlines() if 'Error opening connection to database' in line]
    assert errors, journal[-3000:]
    assert all('postgresql://monitor:PASSWORD_REMOVED@/postgres' in line for line in errors), errors
    assert secret('monitoring') not in journal


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()
