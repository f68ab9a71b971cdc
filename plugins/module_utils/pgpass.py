# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password files (libpq pgpass format): the standby's passfile and the temporary PGPASSFILE of a command.

A password never appears on a command line, in an environment or in a result:
pg_basebackup and pg_rewind read it from a temporary 0600 file, and a standby
from its passfile next to (never in) its data directory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.pgha.cluster.plugins.module_utils.host import chown_if_root, read_text, write_file_atomic


def default_passfile(data_directory):
    """``<parent>/.pgpass_<basename>``: next to the data directory, not in it.

    Outside the data directory so that pg_basebackup/pg_rewind never copy it
    and a moved-aside directory never carries a secret; one file per data
    directory so that two clusters on one host never race on it.
    """
    data_directory = os.path.normpath(data_directory)
    return os.path.join(os.path.dirname(data_directory), '.pgpass_' + os.path.basename(data_directory))


def pgpass_escape(value):
    return str(value).replace('\\', '\\\\').replace(':', '\\:')


def pgpass_split(line):
    """Split a pgpass line into its fields, honouring backslash escapes."""
    fields, current, escaped = [], [], False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == '\\':
            escaped = True
        elif char == ':' and len(fields) < 4:
            fields.append(''.join(current))
            current = []
        else:
            current.append(char)
    fields.append(''.join(current))
    return fields


def pgpass_line(host, port, user, password, dbname='*'):
    return ':'.join(pgpass_escape(v) for v in (host, port, dbname, user, password))


def update_pgpass(content, host, port, user, password, dbname='*'):
    """Return ``content`` with exactly one entry for host:port:dbname:user.

    Other entries and comments are kept in place; the entry replaces the
    first matching line (or is appended).
    """
    wanted = pgpass_line(host, port, user, password, dbname)
    key = [str(host), str(port), str(dbname), str(user)]
    out, placed = [], False
    for line in (content or '').splitlines():
        if line.strip() and not line.lstrip().startswith('#') and pgpass_split(line)[:4] == key:
            if not placed:
                out.append(wanted)
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append(wanted)
    return '\n'.join(out) + '\n'


class TempPassfile(object):
    """A 0600 pgpass file in a 0700 directory owned by the server's OS user.

    Used as ``PGPASSFILE`` for pg_basebackup/pg_rewind so that a password
    never appears on a command line, in the environment or in a result.
    """

    def __init__(self, uid, gid, entries):
        self.uid, self.gid, self.entries = uid, gid, entries
        self.directory = None
        self.path = None

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix='pgha-pass-')
        os.chmod(self.directory, 0o700)
        chown_if_root(self.directory, self.uid, self.gid)
        self.path = os.path.join(self.directory, 'pgpass')
        content = ''
        for host, port, user, password, dbname in self.entries:
            if password:
                content = update_pgpass(content, host, port, user, password, dbname)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
        chown_if_root(self.path, self.uid, self.gid)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.directory, ignore_errors=True)
        return False


def ensure_passfile(module, path, host, port, user, password, uid, gid):
    """Make ``path`` hold the replication password; returns True if it changed."""
    current = read_text(path)
    wanted = update_pgpass(current, host, port, user, password)
    if current is not None:
        st = os.stat(path)
        if current == wanted and st.st_mode & 0o077 == 0 and (os.geteuid() != 0 or st.st_uid == uid):
            return False
    if not module.check_mode:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            module.fail_json(msg="passfile directory '%s' does not exist; set passfile to a path in an "
                                 "existing directory the os_user can read" % parent)
        write_file_atomic(path, wanted, uid, gid, 0o600)
    return True
