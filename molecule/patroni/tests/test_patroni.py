"""The Patroni cluster after converge, a switchover and a crash of the leader's host.

Runs against the real containers: patronictl, psql through the local Unix
socket and through HAProxy, etcdctl over TLS.
"""
import json
import secrets
import shlex
import time

import pytest
import testinfra

import pgha_nodes

PATRONICTL = 'patronictl -c /etc/patroni/config.yml list -f json'


def config_pgpassword(account):
    """Shell prefix that sets PGPASSWORD to an account's password from Patroni's config on the node.

    The password is read on the node and only handed to psql through the
    environment; it never reaches the test output.
    """
    return ("PGPASSWORD=$(python3 -c \"import yaml; "
            "print(yaml.safe_load(open('/etc/patroni/config.yml'))['postgresql']['authentication']['%s']"
            "['password'])\")" % account)


SUPERUSER_PGPASSWORD = config_pgpassword('superuser')
# The CA that signed every member's PostgreSQL certificate (the postgresql role's lab CA).
POSTGRESQL_CA = '/etc/patroni/tls/postgresql-ca.crt'
# The replication account's client certificate, on the members only (owned by postgres,
# mode 0600; root's psql may read it).
CLIENT_CERT = '/etc/patroni/tls/client-replication.crt'
CLIENT_KEY = '/etc/patroni/tls/client-replication.key'
# An ordinary application account, created by the test on the leader.
APP_USER = 'pgha_verify_app'
APP_PASSWORD = secrets.token_hex(16)
# How long the idle cluster's journal is watched (issue: no traceback over a minute).
IDLE_WINDOW_SECONDS = 60


def members(host):
    out = host.check_output(PATRONICTL)
    return {m['Member']: m for m in json.loads(out)}


def psql(host, sql, port=None, address='127.0.0.1'):
    """psql over the local socket as postgres, or through HAProxy (port) as the application account."""
    if port is None:
        return pgha_nodes.psql(host, sql)
    return pgha_nodes.psql(host, sql, environment='PGPASSWORD=%s' % shlex.quote(APP_PASSWORD),
                           connection='-h %s -p %d -U %s' % (shlex.quote(address), port, APP_USER))


def address_of(host, name):
    """The IPv4 address a lab host name resolves to, as seen from host."""
    return host.check_output("getent ahostsv4 %s | awk 'NR==1 {print $1}'" % name)


@pytest.fixture(scope='module')
def cluster(host):
    return members(host)


@pytest.fixture(scope='session', autouse=True)
def app_account(lab_hosts):
    """An ordinary login role (no superuser), created on the leader over its local socket."""
    nodes = [testinfra.get_host('podman://' + name) for name in lab_hosts]
    leader = [n for n in nodes if n.run("runuser -u postgres -- psql -XAtqc 'SELECT pg_is_in_recovery()'").stdout.strip() == 'f']
    assert len(leader) == 1
    psql(leader[0], "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s LOGIN; END IF; END$$"
         % (APP_USER, APP_USER))
    psql(leader[0], "ALTER ROLE %s PASSWORD '%s'; GRANT CREATE ON SCHEMA public TO %s" % (APP_USER, APP_PASSWORD, APP_USER))
    return APP_USER


@pytest.fixture(scope='session')
def idle_journals(lab_hosts):
    """Every node's Patroni journal over IDLE_WINDOW_SECONDS of an idle cluster (watched once, for all nodes)."""
    nodes = {name: testinfra.get_host('podman://' + name) for name in lab_hosts}
    since = {name: node.check_output('date +%s') for name, node in nodes.items()}
    time.sleep(IDLE_WINDOW_SECONDS)
    return {name: node.check_output("journalctl -u patroni -o cat --no-pager --since @%s" % since[name])
            for name, node in nodes.items()}


def test_one_leader_two_running_replicas(cluster, lab_hosts):
    assert sorted(cluster) == sorted(lab_hosts)
    roles = sorted(m['Role'] for m in cluster.values())
    assert roles == ['Leader', 'Replica', 'Replica'], cluster
    # Patroni 3.0.4 and later name a streaming replica's state 'streaming'.
    assert all(m['State'] == ('running' if m['Role'] == 'Leader' else 'streaming') for m in cluster.values()), cluster


def test_timeline_moved_on_and_is_shared(cluster):
    # bootstrap (1) -> switchover (2) -> host crash failover (3)
    timelines = {m['TL'] for m in cluster.values()}
    assert len(timelines) == 1, cluster
    assert timelines.pop() >= 3, cluster


def test_recovery_state_matches_role(host, cluster):
    me = cluster[host.backend.get_hostname()]
    expected = 'f' if me['Role'] == 'Leader' else 't'
    assert psql(host, 'SELECT pg_is_in_recovery()') == expected


def test_leader_streams_to_both_replicas(host, cluster):
    if cluster[host.backend.get_hostname()]['Role'] != 'Leader':
        pytest.skip('checked on the leader')
    rows = psql(host, "SELECT application_name || ':' || state FROM pg_stat_replication ORDER BY 1").splitlines()
    replicas = sorted(n for n, m in cluster.items() if m['Role'] != 'Leader')
    assert rows == ['%s:streaming' % n for n in replicas]


def test_a_row_written_on_the_leader_reaches_every_replica(host, cluster):
    name = host.backend.get_hostname()
    token = 'verify-%s' % name
    # Written through this node's HAProxy primary port, whichever node leads.
    psql(host, "CREATE TABLE IF NOT EXISTS pgha_verify (t text PRIMARY KEY); "
               "INSERT INTO pgha_verify VALUES ('%s') ON CONFLICT DO NOTHING" % token, port=5000)
    from testinfra import get_host
    for peer in cluster:
        peer_host = get_host('podman://' + peer)
        seen = ''
        for dummy in range(20):
            seen = psql(peer_host, "SELECT count(*) FROM pgha_verify WHERE t = '%s'" % token) if _table_exists(peer_host) else '0'
            if seen == '1':
                break
            peer_host.run('sleep 0.5')
        assert seen == '1', peer


def _table_exists(host):
    return psql(host, "SELECT to_regclass('pgha_verify') IS NOT NULL") == 't'


def test_haproxy_routes_to_leader_and_replicas(host):
    assert psql(host, 'SELECT pg_is_in_recovery()', port=5000) == 'f'
    assert psql(host, 'SELECT pg_is_in_recovery()', port=5001) == 't'


@pytest.mark.parametrize('port', [5000, 5001])
def test_superuser_is_refused_through_haproxy(host, lab_hosts, port):
    """HAProxy reaches PostgreSQL from a member's address: the superuser must still be refused.

    The right password is given, over the loopback and over the node's own
    address; an ordinary account passes the same way (test above and below).
    """
    name = host.backend.get_hostname()
    address = address_of(host, name)
    for target in ('127.0.0.1', address):
        cmd = host.run("%s psql -XAtq -h %s -p %d -U postgres -d postgres -c 'SELECT 1'" % (SUPERUSER_PGPASSWORD, target, port))
        assert cmd.rc != 0, (target, port, cmd.stdout)
        assert 'pg_hba.conf rejects connection' in cmd.stderr, cmd.stderr
        assert psql(host, 'SELECT current_user', port=port, address=target) == APP_USER


def test_replication_runs_over_verified_tls(host, cluster):
    """Every replica streams over TLS and checks the leader's certificate and address (verify-full)."""
    if cluster[host.backend.get_hostname()]['Role'] == 'Leader':
        replicas = len(cluster) - 1
        assert psql(host, "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl") == str(replicas)
    else:
        conninfo = psql(host, 'SELECT conninfo FROM pg_stat_wal_receiver')
        assert 'sslmode=verify-full' in conninfo and 'sslrootcert=%s' % POSTGRESQL_CA in conninfo, conninfo
        assert 'sslcert=%s' % CLIENT_CERT in conninfo, conninfo


def test_replication_needs_tls_and_the_members_client_certificate(host, cluster):
    """A member replicates over TLS with the replication account's client certificate. The
    same account and password without TLS, or without the certificate, is refused, also
    through HAProxy's port, which reaches the leader from a member's address."""
    leader = [n for n, m in cluster.items() if m['Role'] == 'Leader'][0]
    if host.backend.get_hostname() == leader:
        pytest.skip('asked from the replicas')
    address = address_of(host, leader)
    own_address = address_of(host, host.backend.get_hostname())
    password = config_pgpassword('replication')

    def replicate(dsn):
        return host.run("%s psql -XAtq '%s user=replicator dbname=replication replication=true' -c IDENTIFY_SYSTEM"
                        % (password, dsn))

    direct = 'host=%s port=5432' % address
    plain = replicate(direct + ' sslmode=disable')
    assert plain.rc != 0 and 'no encryption' in plain.stderr, plain.stderr
    tls_only = replicate('%s sslmode=verify-full sslrootcert=%s' % (direct, POSTGRESQL_CA))
    assert tls_only.rc != 0 and 'certificate' in tls_only.stderr, tls_only.stderr
    through_haproxy = replicate('host=%s port=5000 sslmode=require' % own_address)
    assert through_haproxy.rc != 0 and 'certificate' in through_haproxy.stderr, through_haproxy.stderr
    with_certificate = replicate('%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s'
                                 % (direct, POSTGRESQL_CA, CLIENT_CERT, CLIENT_KEY))
    assert with_certificate.rc == 0, with_certificate.stderr


@pytest.mark.parametrize('port', [5000, 5001])
def test_clients_verify_the_servers_certificate_through_haproxy(host, port):
    name = host.backend.get_hostname()
    address = address_of(host, name)
    out = host.check_output("PGPASSWORD=%s psql -XAtq 'host=%s port=%d user=%s dbname=postgres sslmode=verify-full sslrootcert=%s' "
                            "-c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'"
                            % (APP_PASSWORD, address, port, APP_USER, POSTGRESQL_CA))
    assert out == 't'


def test_superuser_still_logs_in_over_the_local_socket(host):
    assert psql(host, 'SHOW is_superuser') == 'on'


def test_haproxy_checks_do_not_use_get(host):
    """GET checks made Patroni 3.0.2 log a ConnectionResetError traceback per check."""
    conf = host.file('/etc/haproxy/haproxy.cfg').content_string
    assert 'http-check send meth OPTIONS uri /primary' in conf
    assert 'meth GET' not in conf


def test_patroni_journal_has_no_traceback_while_idle(host, idle_journals):
    journal = idle_journals[host.backend.get_hostname()]
    lines = journal.splitlines()
    # Patroni logs its loop (about one line per loop_wait); an empty window means the journal was not read.
    assert len(lines) >= IDLE_WINDOW_SECONDS // 4, journal[-2000:]
    assert 'Traceback' not in journal and 'ConnectionResetError' not in journal, journal[-4000:]
    print('%s: %d journal lines in %d s' % (host.backend.get_hostname(), len(lines), IDLE_WINDOW_SECONDS))


def test_leader_fence_watches_and_stopped_nothing(host, cluster):
    """The leader fence runs on every member, reads PostgreSQL and the REST API (one round by
    hand says what it found), and after a switchover and a host-crash failover, neither of
    which cut a leader off from etcd, it has stopped no PostgreSQL."""
    assert host.service('pgha-patroni-leader-fence').is_running
    found = host.check_output('runuser -u postgres -- python3 /usr/local/lib/pgha_patroni_leader_fence.py '
                              '--once /etc/patroni/leader-fence.json')
    expected = 'leader' if cluster[host.backend.get_hostname()]['Role'] == 'Leader' else 'not primary'
    assert found == expected
    journal = host.check_output('journalctl -u pgha-patroni-leader-fence -o cat --no-pager')
    assert 'started: asks https://127.0.0.1:8008/leader' in journal
    assert 'stopped PostgreSQL' not in journal, journal[-3000:]


def test_config_file_holds_secrets_safely(host):
    conf = host.file('/etc/patroni/config.yml')
    assert conf.user == 'postgres'
    assert conf.mode in (0o600, 0o640)


def test_rest_api_refuses_unauthenticated_changes(host):
    """Over HTTPS, verified against the role's CA: a change without credentials gets 401."""
    code = host.check_output(
        "python3 -c \"import ssl, urllib.request, urllib.error\n"
        "ctx = ssl.create_default_context(cafile='/etc/patroni/tls/restapi-ca.crt')\n"
        "req = urllib.request.Request('https://127.0.0.1:8008/config', data=b'{}', method='PATCH')\n"
        "try:\n    print(urllib.request.urlopen(req, context=ctx).status)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\"")
    assert code == '401'


def test_rest_api_speaks_only_tls(host):
    """TLS is the default: a plain HTTP request gets no HTTP answer."""
    answer = host.run("python3 -c \"import urllib.request\n"
                      "print(urllib.request.urlopen('http://127.0.0.1:8008/health', timeout=5).status)\"")
    assert answer.rc != 0 and '200' not in answer.stdout


def test_etcd_members_are_healthy_over_tls(host, lab_hosts):
    """Every member answers a quorum read over TLS.

    The crashed host rejoined shortly before; its member catches up with the
    raft log within seconds, so the check allows up to 60 s for that.
    """
    endpoints = ','.join('https://%s:2379' % h for h in lab_hosts)
    command = ('etcdctl --cacert /etc/etcd/tls/ca.crt --cert /etc/etcd/tls/member.crt --key /etc/etcd/tls/member.key '
               '--endpoints %s endpoint health' % endpoints)
    for _attempt in range(30):
        out = host.run(command)
        if out.rc == 0:
            break
        time.sleep(2)
    assert out.rc == 0, out.stderr
    assert out.stderr.count('is healthy') + out.stdout.count('is healthy') == 3


def test_etcd_leader_is_not_on_the_primarys_host(host, lab_hosts):
    """After a deployment, a switchover and a failover, etcd's leader runs on another host than
    Patroni's leader (the on_role_change callback moved it), so a crash of the primary's host
    costs no etcd election. Up to 30 s for the rejoined member and the callback to settle.
    Lab host, etcd endpoint and Patroni member share one name."""
    command = ('etcdctl --cacert /etc/etcd/tls/ca.crt --cert /etc/etcd/tls/member.crt --key /etc/etcd/tls/member.key '
               '--endpoints %s endpoint status -w json' % ','.join('https://%s:2379' % h for h in lab_hosts))
    for _attempt in range(15):
        statuses = json.loads(host.check_output(command))
        etcd_leader = [s['Endpoint'] for s in statuses if s['Status']['header']['member_id'] == s['Status']['leader']]
        patroni_leader = [name for name, m in members(host).items() if m['Role'] == 'Leader']
        if etcd_leader and patroni_leader and etcd_leader[0] != 'https://%s:2379' % patroni_leader[0]:
            break
        time.sleep(2)
    assert etcd_leader and patroni_leader, statuses
    assert etcd_leader[0] != 'https://%s:2379' % patroni_leader[0], (etcd_leader, patroni_leader)


def test_no_password_in_any_log(assert_no_secret_logged):
    """Issue 11, secrets in logs: after a deploy, an idempotent re-run, a switchover, a host
    crash and a rejoin, no lab password (Patroni's four among them) is in any log of any
    node, PostgreSQL's own log directory under the data directory included."""
    assert_no_secret_logged(extra_dirs=['/var/lib/postgresql/15/pgha/log'])
