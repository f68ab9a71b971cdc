# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_basebackup into a data directory without ever leaving a half-written one (standby_clone, rewind's reclone)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile
import time

from ansible_collections.pgha.cluster.plugins.module_utils.host import chown_if_root, directory_size
from ansible_collections.pgha.cluster.plugins.module_utils.pg_server import controldata
from ansible_collections.pgha.cluster.plugins.module_utils.pgpass import TempPassfile
from ansible_collections.pgha.cluster.plugins.module_utils.replication_protocol import drop_slot, replication_connect
from ansible_collections.pgha.cluster.plugins.module_utils.standby import apply_standby_config, basebackup_conninfo, desired_standby_settings


MOVED_ASIDE_MARK = '.pgha-moved-'
CLONE_TMP_MARK = '.pgha-clone-'


def moved_aside_name(data_directory):
    return '%s%s%s' % (os.path.normpath(data_directory), MOVED_ASIDE_MARK, time.strftime('%Y%m%dT%H%M%S'))


def refuse_mount_point(module, data_directory, target):
    """Fail, before any change, when a non-empty data_directory is a mount point.

    A directory that is moved aside must stay on its file system, so the
    copy is made in a sibling directory; a mount point's sibling is on the
    parent file system, and the mount point itself can be neither renamed nor
    removed.
    """
    if target['kind'] not in ('absent', 'empty') and os.path.ismount(data_directory):
        module.fail_json(msg="data_directory '%s' is a mount point that is not empty: it cannot be moved aside "
                             "(the copy would land on the parent file system and the mount point cannot be "
                             "renamed). Move its contents elsewhere on that file system yourself, then rerun; an "
                             "empty mount point is cloned into directly." % data_directory)


def _basebackup(module, runner, repl, directory, uid, gid, options, create_slot, slot_pre_exists, extra_settings,
                state):
    """pg_basebackup into the empty ``directory`` and write the standby settings there.

    Sets ``state['created_slot']`` as soon as pg_basebackup is asked to
    create the slot, so that a failure can drop it again.
    """
    args = ['-D', directory, '-d', basebackup_conninfo(repl), '-X', options['wal_method'], '-c',
            options['checkpoint'], '-w']
    if repl.get('slot_name') and options['wal_method'] == 'stream':
        if create_slot and not slot_pre_exists:
            args.append('-C')
            state['created_slot'] = True
        args += ['-S', repl['slot_name']]
    if options.get('max_rate'):
        args += ['-r', options['max_rate']]
    if not options.get('verify_checksums', True):
        args.append('--no-verify-checksums')
    with TempPassfile(uid, gid, [(repl['host'], repl['port'], repl['user'], repl.get('password'), '*')]) as pf:
        environ = {'PGPASSFILE': pf.path, 'PGCONNECT_TIMEOUT': str(repl['connect_timeout'])}
        rc, out, err = runner.run('pg_basebackup', args, environ=environ, check=False)
    if rc != 0:
        raise RuntimeError('pg_basebackup failed (rc=%d): %s' % (rc, (err or out).strip()))
    apply_standby_config(module, directory, desired_standby_settings(repl, extra_settings), uid, gid,
                         check_mode=False)
    return controldata(module, runner.bin_dir, directory), directory_size(directory)


def _empty_directory(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            os.unlink(full)


def clone(module, runner, repl, data_directory, uid, gid, options, target, create_slot, slot_pre_exists,
          extra_settings=None):
    """pg_basebackup into a temporary sibling directory, then swap it in.

    ``target`` is the result of inspect_directory(); a non-empty target must
    already have been authorised (force). Returns a dict with moved_aside_to,
    bytes_copied, system_identifier. Never leaves a half-written directory:
    the temporary directory is removed on failure and the target is only
    touched (renamed, never deleted) once the copy is complete. An empty
    mount point is cloned into directly (its sibling would be on another
    file system) and emptied again on failure.
    """
    data_directory = os.path.normpath(data_directory)
    parent = os.path.dirname(data_directory)
    if not os.path.isdir(parent):
        module.fail_json(msg="The parent directory of data_directory ('%s') does not exist; create it or "
                             "fix data_directory" % parent)
    refuse_mount_point(module, data_directory, target)
    in_place = os.path.ismount(data_directory)
    if in_place:
        workdir, saved = data_directory, os.stat(data_directory)
    else:
        workdir, saved = tempfile.mkdtemp(prefix='.' + os.path.basename(data_directory) + CLONE_TMP_MARK,
                                          dir=parent), None
    os.chmod(workdir, 0o700)
    chown_if_root(workdir, uid, gid)
    state = dict(created_slot=False)
    moved = None
    try:
        info, size = _basebackup(module, runner, repl, workdir, uid, gid, options, create_slot, slot_pre_exists,
                                 extra_settings, state)
        if not in_place:
            if target['kind'] == 'empty':
                os.rmdir(data_directory)
            elif target['kind'] != 'absent':
                moved = moved_aside_name(data_directory)
                os.rename(data_directory, moved)
            os.rename(workdir, data_directory)
        workdir = None
        return dict(moved_aside_to=moved, bytes_copied=size, system_identifier=info['system_identifier'],
                    created_slot=state['created_slot'])
    except Exception as exc:
        if moved and not os.path.lexists(data_directory):
            os.rename(moved, data_directory)
            moved = None
        if state['created_slot']:
            drop_slot(module, lambda: replication_connect(module, repl, fail=False), repl['slot_name'])
        module.fail_json(msg='Cloning into %s failed; the data directory was left untouched and the temporary '
                             'copy removed: %s' % (data_directory, exc), commands=runner.commands)
    finally:
        if workdir and in_place:
            _empty_directory(workdir)
            os.chmod(workdir, saved.st_mode & 0o7777)
            chown_if_root(workdir, saved.st_uid, saved.st_gid)
        elif workdir and os.path.isdir(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
