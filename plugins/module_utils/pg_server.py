# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers around a local PostgreSQL data directory and its server binaries.

Used by the modules that act on a data directory rather than (or as well as)
through a connection: standby_clone, promote, rewind.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import time

from ansible_collections.pgha.cluster.plugins.module_utils.host import chown_if_root, os_user_ids, read_text, shell_join

CONTROLDATA_STATES_CLEAN = ('shut down', 'shut down in recovery')
STANDBY_SIGNAL = 'standby.signal'


def data_directory_argument_spec():
    return dict(
        data_directory=dict(type='path', required=True),
        bin_dir=dict(type='path'),
    )


def find_bin_dir(module, bin_dir=None, version=None):
    """Locate the directory holding pg_ctl, pg_basebackup, pg_rewind...

    Order: the explicit ``bin_dir``; the Debian layout for the data
    directory's PG_VERSION; the newest /usr/lib/postgresql/*/bin; PATH.
    """
    if bin_dir:
        if not os.path.isfile(os.path.join(bin_dir, 'pg_ctl')):
            module.fail_json(msg="bin_dir '%s' does not contain pg_ctl; set bin_dir to the "
                                 "PostgreSQL server binaries directory" % bin_dir)
        return bin_dir
    candidates = []
    if version:
        candidates.append('/usr/lib/postgresql/%s/bin' % version)
        candidates.append('/usr/pgsql-%s/bin' % version)
    candidates.extend(sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                             key=lambda p: _version_key(p.split('/')[-2]), reverse=True))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, 'pg_ctl')):
            return candidate
    pg_ctl = module.get_bin_path('pg_ctl')
    if pg_ctl:
        return os.path.dirname(pg_ctl)
    module.fail_json(msg='Could not find the PostgreSQL server binaries (pg_ctl). '
                         'Install the server package or set bin_dir.')


def _version_key(text):
    try:
        return tuple(int(x) for x in text.split('.'))
    except ValueError:
        return (0,)


def major_version(server_version_num):
    """150004 -> '15'; 90624 -> '9.6' (the name of the Debian binaries directory)."""
    if server_version_num >= 100000:
        return str(server_version_num // 10000)
    return '%d.%d' % (server_version_num // 10000, (server_version_num // 100) % 100)


def binaries_major(module, bin_dir):
    """Major version of the server binaries in ``bin_dir`` ('15'), from ``postgres --version``; None if unknown."""
    rc, out, err = module.run_command([os.path.join(bin_dir, 'postgres'), '--version'])
    match = re.search(r'\(PostgreSQL\) (\d+)(?:\.(\d+))?', out or '')
    if rc != 0 or not match:
        return None
    return match.group(1) if int(match.group(1)) >= 10 else '%s.%s' % (match.group(1), match.group(2))


def require_major(module, bin_dir, major, whose):
    """Fail, before any change, when the binaries of ``bin_dir`` are not of PostgreSQL ``major``."""
    found = binaries_major(module, bin_dir)
    if found != major:
        module.fail_json(msg='The server binaries in %s are PostgreSQL %s, but %s runs PostgreSQL %s: its data '
                             'directory can only be started by PostgreSQL %s. Install PostgreSQL %s (Debian: '
                             'postgresql-%s) or set bin_dir to its binaries.'
                             % (bin_dir, found or '(unknown version)', whose, major, major, major, major))


def data_directory_version(data_directory):
    """Major version from PG_VERSION, or None if the directory is no cluster."""
    path = os.path.join(data_directory, 'PG_VERSION')
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return handle.read().strip()


def is_data_directory(data_directory):
    return data_directory_version(data_directory) is not None and \
        os.path.isfile(os.path.join(data_directory, 'global', 'pg_control'))


def run_binary(module, bin_dir, name, args, check_rc=True, environ_update=None, run_as=None, cwd=None):
    """Run one of the PostgreSQL binaries (as ``run_as`` when we are root); returns (rc, stdout, stderr)."""
    cmd = [os.path.join(bin_dir, name)] + [str(a) for a in args]
    if run_as:
        cmd = as_user(module, run_as, cmd)
    rc, out, err = module.run_command(cmd, environ_update=environ_update, cwd=cwd)
    if check_rc and rc != 0:
        module.fail_json(msg='%s failed (rc=%d): %s' % (name, rc, (err or out).strip()),
                         cmd=' '.join(cmd), rc=rc, stdout=out, stderr=err)
    return rc, out, err


def as_user(module, user, cmd):
    """Wrap a command so it runs as ``user`` when we are root."""
    if os.geteuid() != 0:
        return cmd
    runuser = module.get_bin_path('runuser') or module.get_bin_path('su')
    if runuser and runuser.endswith('runuser'):
        return [runuser, '-u', user, '--'] + cmd
    return [module.get_bin_path('setpriv', required=True), '--reuid', user, '--regid', user,
            '--init-groups', '--'] + cmd


def controldata(module, bin_dir, data_directory):
    """pg_controldata as a dict of its 'Key: value' lines, plus parsed fields.

    Adds: ``system_identifier`` (str), ``cluster_state``, ``timeline`` (int,
    latest checkpoint's TimeLineID), ``min_recovery_timeline`` (int),
    ``data_checksums`` (bool) and ``wal_log_hints`` (bool).
    """
    rc, out, err = run_binary(module, bin_dir, 'pg_controldata', ['-D', data_directory],
                              environ_update={'LC_ALL': 'C', 'LANG': 'C'})
    raw = {}
    for line in out.splitlines():
        key, sep, value = line.partition(':')
        if sep:
            raw[key.strip()] = value.strip()
    parsed = {
        'system_identifier': raw.get('Database system identifier'),
        'cluster_state': raw.get('Database cluster state'),
        'timeline': _int(raw.get("Latest checkpoint's TimeLineID")),
        'min_recovery_timeline': _int(raw.get("Min recovery ending loc's timeline")),
        'data_checksums': _int(raw.get('Data page checksum version')) not in (None, 0),
        'wal_log_hints': raw.get('wal_log_hints setting') == 'on',
        'latest_checkpoint_location': raw.get('Latest checkpoint location'),
    }
    parsed['raw'] = raw
    return parsed


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


LSN_RE = re.compile(r'^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$')


def lsn_to_int(lsn):
    """'0/3000060' -> integer byte position; None stays None."""
    if lsn is None:
        return None
    high, low = str(lsn).split('/')
    return (int(high, 16) << 32) + int(low, 16)


def data_directory_owner(data_directory):
    """Name of the OS user owning ``data_directory`` (None when unknown)."""
    import pwd
    try:
        return pwd.getpwuid(os.stat(data_directory).st_uid).pw_name
    except (KeyError, OSError):
        return None


def server_status(module, bin_dir, data_directory):
    """'running', 'stopped' or 'no_directory' according to pg_ctl status.

    pg_ctl refuses to run as root, so as root it runs as the directory's owner.
    """
    if not os.path.isdir(data_directory):
        return 'no_directory'
    owner = data_directory_owner(data_directory) or 'postgres'
    return 'running' if server_running(module, bin_dir, data_directory, owner, settle=0) else 'stopped'


def processes_using(data_directory):
    """PIDs whose working directory is ``data_directory`` (postgres chdirs there).

    Catches the backends a killed postmaster leaves behind for a moment,
    which pg_ctl status does not see but which keep the shared memory busy.
    """
    target = os.path.realpath(data_directory)
    pids = []
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else []:
        if not entry.isdigit():
            continue
        try:
            if os.readlink('/proc/%s/cwd' % entry) == target:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def server_running(module, bin_dir, data_directory, os_user, settle=30.0):
    """True when a postmaster runs on the directory.

    When the postmaster was killed (kill -9) and is not reaped yet, or its
    orphaned backends still linger, wait up to ``settle`` seconds for them
    to go: they would make single-user crash recovery fail.
    """
    if not os.path.isdir(data_directory):
        return False
    deadline = time.monotonic() + settle
    while True:
        # pg_ctl refuses to run as root: run it as the server's OS user
        rc, out, err = run_binary(module, bin_dir, 'pg_ctl', ['status', '-D', data_directory], check_rc=False,
                                  run_as=os_user, cwd='/')
        busy = (rc == 0 and _postmaster_is_zombie(data_directory)) or (rc != 0 and processes_using(data_directory))
        if not busy or time.monotonic() >= deadline:
            return rc == 0 or bool(busy)
        time.sleep(0.2)


def _postmaster_is_zombie(data_directory):
    """A killed postmaster not reaped yet: pg_ctl still sees its PID, but it is dead."""
    try:
        with open(os.path.join(data_directory, 'postmaster.pid')) as handle:
            pid = int(handle.readline())
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except (IOError, OSError, ValueError, IndexError):
        return False


def inspect_directory(module, bin_dir, data_directory):
    """What is at ``data_directory``: absent, empty, cluster, other (junk)."""
    if not os.path.lexists(data_directory):
        return dict(kind='absent')
    if not os.path.isdir(data_directory) or os.path.islink(data_directory):
        return dict(kind='other')
    if not os.listdir(data_directory):
        return dict(kind='empty')
    if is_data_directory(data_directory):
        info = controldata(module, bin_dir, data_directory)
        info['kind'] = 'cluster'
        info['data_directory'] = data_directory
        info['standby_signal'] = os.path.exists(os.path.join(data_directory, STANDBY_SIGNAL))
        return info
    return dict(kind='other')


class Runner(object):
    """Runs PostgreSQL binaries as the OS user and records the commands."""

    def __init__(self, module, bin_dir, os_user):
        self.module, self.bin_dir, self.os_user = module, bin_dir, os_user
        self.commands = []

    def run(self, name, args, environ=None, check=True, what=None, fail=True):
        self.commands.append(shell_join([os.path.join(self.bin_dir, name)] + [str(a) for a in args], environ))
        env = dict(environ or {})
        env.update({'LC_ALL': 'C', 'LANG': 'C'})
        rc, out, err = run_binary(self.module, self.bin_dir, name, args, check_rc=False, environ_update=env,
                                  run_as=self.os_user, cwd='/')
        if check and rc != 0 and fail:
            self.module.fail_json(msg='%s failed (rc=%d)%s: %s' % (name, rc, ' ' + what if what else '',
                                                                   (err or out).strip()),
                                  rc=rc, stdout=out, stderr=err, commands=self.commands)
        return rc, out, err

    def reload(self, data_directory):
        return self.run('pg_ctl', ['reload', '-D', data_directory])

    def start(self, data_directory, log_file, config_file=None, timeout=120):
        uid, gid = os_user_ids(self.module, self.os_user)
        if not os.path.exists(log_file):
            parent = os.path.dirname(log_file)
            if not os.path.isdir(parent):
                self.module.fail_json(msg="start_log_file directory '%s' does not exist; set start_log_file"
                                          % parent)
            open(log_file, 'a').close()
            os.chmod(log_file, 0o640)
            chown_if_root(log_file, uid, gid)
        args = ['start', '-D', data_directory, '-l', log_file, '-w', '-t', str(timeout)]
        if config_file:
            args += ['-o', '-c config_file=%s' % config_file]
        rc, out, err = self.run('pg_ctl', args, check=False)
        if rc != 0:
            tail = ''.join((read_text(log_file) or '').splitlines(True)[-15:])
            self.module.fail_json(msg='pg_ctl start failed (rc=%d): %s\n%s' % (rc, (err or out).strip(), tail),
                                  commands=self.commands)

    def stop(self, data_directory, mode='fast', timeout=120):
        self.run('pg_ctl', ['stop', '-D', data_directory, '-m', mode, '-w', '-t', str(timeout)])


def default_log_file(data_directory):
    return os.path.normpath(data_directory) + '.log'
