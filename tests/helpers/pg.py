"""A real PostgreSQL instance in a temporary directory, for tests."""
import glob
import os
import subprocess
import tempfile

import psycopg
from psycopg.rows import dict_row


def find_bin_dir():
    candidates = sorted(glob.glob('/usr/lib/postgresql/*/bin'), reverse=True)
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, 'pg_ctl')):
            return candidate
    return None


class PgInstance:
    """One server: data directory, port, and the accounts tests use."""

    def __init__(self, bin_dir, data_directory, port, os_user=None,
                 superuser_password='', replication_password=''):
        self.bin_dir = bin_dir
        self.data_directory = data_directory
        self.port = port
        self.os_user = os_user
        self.superuser = 'postgres'
        self.superuser_password = superuser_password
        self.replication_user = 'replicator'
        self.replication_password = replication_password
        self.log_file = data_directory + '.log'

    # -- process control -------------------------------------------------
    def _cmd(self, name, *args):
        cmd = [os.path.join(self.bin_dir, name)] + list(args)
        if self.os_user:
            cmd = ['runuser', '-u', self.os_user, '--'] + cmd
        return cmd

    def run(self, name, *args, check=True, env=None):
        full_env = dict(os.environ, LC_ALL='C')
        full_env.update(env or {})
        return subprocess.run(self._cmd(name, *args), check=check, capture_output=True, text=True,
                              env=full_env)

    def prepare_directory(self):
        os.makedirs(self.data_directory, mode=0o700, exist_ok=True)
        if self.os_user:
            subprocess.run(['chown', '-R', self.os_user, self.data_directory], check=True)
            open(self.log_file, 'a').close()
            subprocess.run(['chown', self.os_user, self.log_file], check=True)

    def initdb(self, settings=None, checksums=False):
        self.prepare_directory()
        with tempfile.NamedTemporaryFile('w', delete=False) as pwfile:
            pwfile.write(self.superuser_password + '\n')
        os.chmod(pwfile.name, 0o644)
        try:
            args = ['-D', self.data_directory, '-U', self.superuser, '--pwfile', pwfile.name,
                    '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C']
            if checksums:
                args.append('--data-checksums')
            self.run('initdb', *args)
        finally:
            os.unlink(pwfile.name)
        conf = {
            'listen_addresses': "'127.0.0.1'",
            'port': str(self.port),
            'unix_socket_directories': "'%s'" % os.path.dirname(self.data_directory),
            'wal_level': 'replica',
            'max_wal_senders': '10',
            'max_replication_slots': '10',
            'wal_log_hints': 'on',
            'hot_standby': 'on',
            'fsync': 'off',
            'shared_buffers': '16MB',
            'wal_keep_size': '64MB',
            'logging_collector': 'off',
        }
        conf.update(settings or {})
        with open(os.path.join(self.data_directory, 'postgresql.conf'), 'a') as handle:
            for key, value in conf.items():
                handle.write('%s = %s\n' % (key, value))
        with open(os.path.join(self.data_directory, 'pg_hba.conf'), 'w') as handle:
            handle.write('local all all scram-sha-256\n'
                         'host all all 127.0.0.1/32 scram-sha-256\n'
                         'host replication all 127.0.0.1/32 scram-sha-256\n')

    def start(self, wait=True):
        args = ['start', '-D', self.data_directory, '-l', self.log_file, '-o', '-p %d' % self.port]
        if wait:
            args += ['-w', '-t', '60']
        result = self.run('pg_ctl', *args, check=False)
        if result.returncode != 0:
            raise RuntimeError('pg_ctl start failed: %s\n%s' % (result.stderr, self.log_tail()))

    def stop(self, mode='fast', check=True):
        if not os.path.isfile(os.path.join(self.data_directory, 'postmaster.pid')):
            return
        self.run('pg_ctl', 'stop', '-D', self.data_directory, '-m', mode, '-w', '-t', '60', check=check)

    def kill9(self):
        """Crash the postmaster (no shutdown checkpoint)."""
        with open(os.path.join(self.data_directory, 'postmaster.pid')) as handle:
            pid = int(handle.readline())
        os.kill(pid, 9)

    def is_running(self):
        return self.run('pg_ctl', 'status', '-D', self.data_directory, check=False).returncode == 0

    def log_tail(self, lines=30):
        try:
            with open(self.log_file) as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return ''

    # -- SQL ---------------------------------------------------------------
    def conninfo(self, **extra):
        params = dict(host='127.0.0.1', port=self.port, user=self.superuser,
                      password=self.superuser_password, dbname='postgres', connect_timeout=5)
        params.update(extra)
        return params

    def connect(self, **extra):
        return psycopg.connect(autocommit=True, row_factory=dict_row, **self.conninfo(**extra))

    def sql(self, query, params=None):
        """Run one statement; return all rows (list of dicts) or [] when none."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, query, params=None):
        rows = self.sql(query, params)
        return list(rows[0].values())[0] if rows else None

    def in_recovery(self):
        return self.scalar('SELECT pg_is_in_recovery()')

    def login_args(self):
        """The module connection options for this instance."""
        return dict(login_host='127.0.0.1', login_port=self.port, login_user=self.superuser,
                    login_password=self.superuser_password)

    def create_replication_user(self):
        self.sql("CREATE ROLE %s WITH LOGIN REPLICATION PASSWORD '%s'"
                 % (self.replication_user, self.replication_password))

    def basebackup_from(self, primary, slot=None):
        """Plain pg_basebackup clone (-R writes the standby settings)."""
        self.prepare_directory()
        args = ['-D', self.data_directory, '-h', '127.0.0.1', '-p', str(primary.port),
                '-U', primary.replication_user, '-X', 'stream', '-R', '-c', 'fast']
        if slot:
            args += ['-S', slot]
        self.run('pg_basebackup', *args, env={'PGPASSWORD': primary.replication_password})
        with open(os.path.join(self.data_directory, 'postgresql.conf'), 'a') as handle:
            handle.write('port = %d\n' % self.port)
