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

CONTROLDATA_STATES_CLEAN = ('shut down', 'shut down in recovery')


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


def run_binary(module, bin_dir, name, args, check_rc=True, environ_update=None, run_as=None):
    """Run one of the PostgreSQL binaries; returns (rc, stdout, stderr)."""
    cmd = [os.path.join(bin_dir, name)] + list(args)
    if run_as:
        cmd = as_user(module, run_as, cmd)
    rc, out, err = module.run_command(cmd, environ_update=environ_update)
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
    run_as = data_directory_owner(data_directory) if os.geteuid() == 0 else None
    rc, out, err = run_binary(module, bin_dir, 'pg_ctl', ['status', '-D', data_directory],
                              check_rc=False, run_as=run_as)
    if rc == 0:
        return 'running'
    if rc == 3:
        return 'stopped'
    return 'no_directory'
