"""A real Pgpool-II process on loopback in front of real PostgreSQL backends.

Used by the ``pgpool_node`` module tests and reusable by later Pgpool-II
tests (the role, the write probe)::

    from tests.helpers import pgpool as pgpool_helpers
    pgpool_factory = pgpool_helpers.pgpool_factory   # makes the fixture visible

    def test_x(pg_factory, pgpool_factory):
        primary = pg_factory.primary()
        standby = pg_factory.standby_of(primary)
        pool = pgpool_factory.start([primary, standby])
        pool.node_info(1)       # parsed ``pcp_node_info --verbose``
        pool.sql('SHOW pool_nodes')

or, for a fixture of any scope, ``primary_standby_pgpool(pg_bin_dir, base_dir)``
(a context manager yielding ``(primary, standby, pool)``).

Everything lives in a temporary directory: pgpool.conf, pcp.conf, pool_hba.conf,
pool_passwd, the pid file, the pgpool_status file and the Unix sockets. The
process is started in the foreground (``-n``) as a child of the test and is
always stopped by the pid that was started: SIGTERM, a bounded wait, then
SIGKILL.
"""
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers.fixtures import PgFactory, free_port, wait_for

PCP_USER = 'pcpadmin'
PCP_PASSWORD = 'pcp-Secret-pw3'


def find_pgpool():
    """Path of the ``pgpool`` binary, or None when Pgpool-II is not installed."""
    for candidate in (shutil.which('pgpool'), '/usr/sbin/pgpool'):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def pcp_bin_dir():
    path = find_pgpool()
    return os.path.dirname(path) if path else None


class PgpoolInstance:
    """One Pgpool-II process in ``base_dir`` with a PCP user and a client port."""

    def __init__(self, binary, base_dir, backends, os_user=None, settings=None,
                 pcp_user=PCP_USER, pcp_password=PCP_PASSWORD):
        self.binary = binary
        self.base_dir = base_dir
        self.backends = list(backends)
        self.os_user = os_user
        self.settings = dict(settings or {})
        self.port = free_port()
        self.pcp_port = free_port()
        self.pcp_user = pcp_user
        self.pcp_password = pcp_password
        self.conf_file = os.path.join(base_dir, 'pgpool.conf')
        self.pcp_conf_file = os.path.join(base_dir, 'pcp.conf')
        self.hba_file = os.path.join(base_dir, 'pool_hba.conf')
        self.passwd_file = os.path.join(base_dir, 'pool_passwd')
        self.pcppass_file = os.path.join(base_dir, 'pcppass')
        self.pid_file = os.path.join(base_dir, 'pgpool.pid')
        self.log_file = os.path.join(base_dir, 'pgpool.log')
        self.process = None
        self._log_handle = None

    # -- configuration -----------------------------------------------------
    def write_config(self):
        os.makedirs(self.base_dir, exist_ok=True)
        superuser = self.backends[0]
        conf = {
            'backend_clustering_mode': "'streaming_replication'",
            'listen_addresses': "'127.0.0.1'",
            'port': str(self.port),
            'socket_dir': "'%s'" % self.base_dir,
            'pcp_listen_addresses': "'127.0.0.1'",
            'pcp_port': str(self.pcp_port),
            'pcp_socket_dir': "'%s'" % self.base_dir,
            'wd_ipc_socket_dir': "'%s'" % self.base_dir,
            'pid_file_name': "'%s'" % self.pid_file,
            'logdir': "'%s'" % self.base_dir,
            'log_destination': "'stderr'",
            'logging_collector': 'off',
            'log_min_messages': 'warning',
            'num_init_children': '4',
            'max_pool': '1',
            'reserved_connections': '0',
            'enable_pool_hba': 'on',
            'pool_passwd': "'%s'" % self.passwd_file,
            'load_balance_mode': 'off',
            'use_watchdog': 'off',
            'memory_cache_enabled': 'off',
            'sr_check_period': '1',
            'sr_check_user': "'%s'" % superuser.superuser,
            'sr_check_password': "'%s'" % superuser.superuser_password,
            'sr_check_database': "'postgres'",
            'health_check_period': '1',
            'health_check_timeout': '2',
            'health_check_user': "'%s'" % superuser.superuser,
            'health_check_password': "'%s'" % superuser.superuser_password,
            'health_check_database': "'postgres'",
            'health_check_max_retries': '1',
            'health_check_retry_delay': '1',
            'failover_command': "''",
            'follow_primary_command': "''",
            'failover_on_backend_error': 'off',
            'search_primary_node_timeout': '10',
            'auto_failback': 'off',
        }
        for node_id, backend in enumerate(self.backends):
            conf['backend_hostname%d' % node_id] = "'127.0.0.1'"
            conf['backend_port%d' % node_id] = str(backend.port)
            conf['backend_weight%d' % node_id] = '1'
            conf['backend_data_directory%d' % node_id] = "'%s'" % backend.data_directory
            conf['backend_flag%d' % node_id] = "'ALLOW_TO_FAILOVER'"
            # Standbys cloned by the harness stream as 'walreceiver' (no cluster_name).
            conf['backend_application_name%d' % node_id] = "'walreceiver'"
        conf.update(self.settings)
        _write(self.conf_file, ''.join('%s = %s\n' % item for item in conf.items()), 0o600)
        md5 = hashlib.md5(self.pcp_password.encode()).hexdigest()
        _write(self.pcp_conf_file, '%s:%s\n' % (self.pcp_user, md5), 0o600)
        _write(self.hba_file, 'local all all scram-sha-256\n'
                              'host all all 127.0.0.1/32 scram-sha-256\n', 0o600)
        # Plain-text entry: Pgpool-II needs the clear password to answer the
        # backends' SCRAM challenge on the client's behalf.
        _write(self.passwd_file, '%s:TEXT%s\n' % (superuser.superuser, superuser.superuser_password),
               0o600)
        _write(self.pcppass_file, ':'.join(_pcppass_escape(v) for v in (
            '127.0.0.1', self.pcp_port, self.pcp_user, self.pcp_password)) + '\n', 0o600)
        if self.os_user:
            subprocess.run(['chown', '-R', self.os_user, self.base_dir], check=True)

    # -- process control -----------------------------------------------------
    def start(self, timeout=30):
        self.write_config()
        cmd = [self.binary, '-n', '-D', '-f', self.conf_file, '-F', self.pcp_conf_file,
               '-a', self.hba_file]
        if self.os_user:
            cmd = ['runuser', '-u', self.os_user, '--'] + cmd
        self._log_handle = open(self.log_file, 'ab')
        self.process = subprocess.Popen(cmd, stdout=self._log_handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(self._ready, timeout=timeout, interval=0.3, what='Pgpool-II to accept PCP '
                     'and client connections and see every backend up')
        except AssertionError as exc:
            self.stop()
            raise AssertionError('%s\n--- pgpool log ---\n%s' % (exc, self.log_tail()))
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError('pgpool exited with %s\n%s' % (self.process.returncode,
                                                                self.log_tail()))
        result = self.pcp('pcp_node_info', '--verbose', '-a', check=False)
        if result.returncode != 0:
            return False
        roles = [line for line in result.stdout.splitlines() if line.startswith('Role ')]
        statuses = [line for line in result.stdout.splitlines() if line.startswith('Status Name')]
        if len(statuses) != len(self.backends) or any('down' in s for s in statuses):
            return False
        if not any('primary' in r for r in roles):
            return False
        try:
            self.sql('SELECT 1')
        except psycopg.Error:
            return False
        return True

    def stop(self, timeout=10):
        """SIGTERM the process group we started, then SIGKILL; never by name."""
        proc = self.process
        if proc is None:
            return
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=timeout)
            # Children that outlived the parent (same session/process group).
            _signal_group(proc.pid, signal.SIGKILL)
        finally:
            self.process = None
            if self._log_handle:
                self._log_handle.close()
                self._log_handle = None

    def log_tail(self, lines=40):
        try:
            with open(self.log_file, errors='replace') as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return ''

    # -- PCP and SQL -----------------------------------------------------------
    def pcp_env(self):
        return dict(os.environ, PCPPASSFILE=self.pcppass_file, LC_ALL='C')

    def pcp(self, command, *args, check=True, timeout=20):
        bin_dir = os.path.dirname(self.binary)
        cmd = [os.path.join(bin_dir, command), '-h', '127.0.0.1', '-p', str(self.pcp_port),
               '-U', self.pcp_user, '-w'] + list(args)
        return subprocess.run(cmd, env=self.pcp_env(), capture_output=True, text=True,
                              check=check, timeout=timeout)

    def node_info(self, node_id):
        """``pcp_node_info --verbose`` of one node as a dict of its raw fields."""
        # Pgpool-II restarts its PCP child after every attach/detach/promote; a
        # command that lands in that moment fails with "unable to read data
        # from socket": retry, bounded.
        def attempt():
            result = self.pcp('pcp_node_info', '--verbose', '-n', str(node_id), check=False)
            return result.stdout if result.returncode == 0 and result.stdout.strip() else None
        out = wait_for(attempt, timeout=10, interval=0.2, what='pcp_node_info of node %d' % node_id)
        info = {}
        for line in out.splitlines():
            if ':' in line:
                key, value = line.split(':', 1)
                info[key.strip()] = value.strip()
        return info

    def pcp_args(self):
        """The module's PCP options for this instance."""
        return dict(pcp_host='127.0.0.1', pcp_port=self.pcp_port, pcp_user=self.pcp_user,
                    pcp_password=self.pcp_password)

    def connect(self):
        backend = self.backends[0]
        return psycopg.connect(host='127.0.0.1', port=self.port, user=backend.superuser,
                               password=backend.superuser_password, dbname='postgres',
                               connect_timeout=5, autocommit=True, row_factory=dict_row)

    def sql(self, query):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else []

    def pool_nodes(self):
        """``SHOW pool_nodes`` through Pgpool-II, keyed by node id (int)."""
        return dict((int(row['node_id']), row) for row in self.sql('SHOW pool_nodes'))


class PgpoolFactory:
    def __init__(self, base_dir, os_user=None):
        self.base_dir = str(base_dir)
        self.os_user = os_user
        self.instances = []
        self.binary = find_pgpool()

    def start(self, backends, name='pgpool', settings=None, timeout=30, pcp_password=PCP_PASSWORD):
        inst = PgpoolInstance(self.binary, os.path.join(self.base_dir, name), backends,
                              os_user=self.os_user, settings=settings, pcp_password=pcp_password)
        self.instances.append(inst)
        return inst.start(timeout=timeout)

    def stop_all(self):
        for inst in reversed(self.instances):
            inst.stop()


@contextlib.contextmanager
def primary_standby_pgpool(pg_bin_dir, base_dir, settings=None, pcp_password=PCP_PASSWORD):
    """A primary, its streaming standby and a Pgpool-II in front: (primary, standby, pool).

    For fixtures of any scope (``base_dir`` e.g. from ``tmp_path_factory``);
    everything it started is stopped on exit, Pgpool-II first.
    """
    pgs = PgFactory(pg_bin_dir, base_dir)
    pools = PgpoolFactory(os.path.join(str(base_dir), 'pgpool-instances'))
    try:
        primary = pgs.primary()
        standby = pgs.standby_of(primary)
        pool = pools.start([primary, standby], settings=settings, pcp_password=pcp_password)
        yield primary, standby, pool
    finally:
        try:
            pools.stop_all()
        finally:
            pgs.stop_all()


@pytest.fixture
def pgpool_factory(pg_factory):
    """Start real Pgpool-II processes; every one is stopped at the end of the test."""
    if find_pgpool() is None:
        pytest.skip('Pgpool-II (pgpool binary) not installed')
    factory = PgpoolFactory(os.path.join(pg_factory.base_dir, 'pgpool-instances'))
    try:
        yield factory
    finally:
        factory.stop_all()


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pcppass_escape(value):
    return str(value).replace('\\', '\\\\').replace(':', '\\:')


def _write(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    os.chmod(path, mode)
