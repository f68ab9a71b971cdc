# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files and accounts on the managed host: the small helpers every module that writes there uses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import shlex
import tempfile


def os_user_ids(module, os_user):
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        module.fail_json(msg="os_user '%s' does not exist on this host; set os_user to the account "
                             "that runs PostgreSQL" % os_user)
    return entry.pw_uid, entry.pw_gid


def chown_if_root(path, uid, gid):
    """chown when running as root (the files then belong to the server's OS user); a no-op otherwise."""
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def write_file_atomic(path, content, uid, gid, mode=0o600):
    """Replace path with content (text or bytes) through a temporary file in the same directory, so that a
    reader sees the old file or the new one, never a part; mode and owner (when root) are set before the rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=directory)
    try:
        with os.fdopen(fd, 'wb' if isinstance(content, bytes) else 'w') as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        chown_if_root(tmp, uid, gid)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def shell_join(cmd, environ=None):
    """A printable command line (for the ``commands`` result; never has secrets)."""
    prefix = ['%s=%s' % (k, v) for k, v in sorted((environ or {}).items())]
    return ' '.join(shlex.quote(str(part)) for part in prefix + list(cmd))


def directory_size(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
