#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: standby_clone
short_description: Make a data directory a streaming standby of a primary with pg_basebackup
description:
  - Clones a PostgreSQL primary into O(data_directory) with C(pg_basebackup) and configures the copy as a
    streaming standby (C(standby.signal), C(primary_conninfo) and C(primary_slot_name) in
    C(postgresql.auto.conf)).
  - The upstream of the options shared with M(pgha.cluster.rewind) is the primary (O(primary_host)).
  - The copy is made into a temporary directory next to O(data_directory) (same file system) and swapped in
    only when complete, so a failed clone never leaves a half-written data directory. When O(data_directory)
    is a mount point, its sibling would be on another file system - an empty mount point is cloned into
    directly (and emptied again if the clone fails); a non-empty one is refused, even with O(force=true),
    since it cannot be moved aside.
  - Idempotent. A data directory that already is a standby of the same primary (same database system
    identifier, C(standby.signal) present) is left alone; only its C(primary_conninfo),
    C(primary_slot_name) and O(settings) are corrected in place when they differ, and a running server is
    reloaded.
  - Such a standby must be able to follow the primary - its timeline the primary's or one of its ancestors,
    and no WAL beyond the point where the primary's history left that timeline (read from the primary with
    C(TIMELINE_HISTORY), and from the node's C(pg_wal) with C(pg_waldump), which only reads files). A node
    that diverged, for example a former primary that kept writing after the failover, is refused before
    anything changes; rewind it (M(pgha.cluster.rewind)) or set O(force=true) to clone it afresh.
  - A non-empty directory holding anything else (another cluster, a former primary, junk) is refused unless
    O(force=true); it is then renamed to C(<data_directory>.pgha-moved-<timestamp>), never deleted. A running
    server is always refused.
  - The replication password is handed to C(pg_basebackup) through a temporary 0600 C(PGPASSFILE) and stored
    for the standby in O(passfile); it never appears on a command line, in the environment of the server or
    in the module result.
  - In check mode the module connects to the primary (read only, which validates the credentials), works out
    what it would do and changes nothing.
  - O(bin_dir) must hold the primary's major version (checked with C(postgres --version), also when found
    automatically), since the standby's data directory can only be started by it; other binaries are refused
    before anything changes.
  - O(settings) that need a restart of a running standby are reported in RV(restart_required).
version_added: 0.1.0
author:
  - pgha.cluster contributors (@pgha)
extends_documentation_fragment:
  - pgha.cluster.standby
options:
  primary_host:
    description:
      - Host name or address of the primary to clone and follow.
    type: str
    required: true
  primary_port:
    description:
      - Port of the primary.
    type: int
    default: 5432
  primary_ssl_mode:
    description:
      - libpq C(sslmode) used by C(pg_basebackup) and written into C(primary_conninfo).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  primary_ssl_root_cert:
    description:
      - CA certificate file on the managed host that verifies the primary's server certificate (libpq
        C(sslrootcert)). Used by C(pg_basebackup) and written into C(primary_conninfo), so the
        O(os_user) must be able to read it.
      - Needed with O(primary_ssl_mode=verify-ca) or O(primary_ssl_mode=verify-full) unless the O(os_user)
        has C(~/.postgresql/root.crt).
    type: path
  create_slot:
    description:
      - Create O(slot_name) with C(pg_basebackup -C) when it does not exist yet. When the slot already exists
        it is used as it is.
      - When V(false), O(slot_name) must already exist on the primary (checked before cloning on
        PostgreSQL 15 and later).
    type: bool
    default: false
  wal_method:
    description:
      - How C(pg_basebackup) includes the WAL needed by the copy (C(-X)).
      - Replication slots can only be used while cloning with V(stream).
    type: str
    default: stream
    choices: [stream, fetch]
  max_rate:
    description:
      - Maximum transfer rate of the copy (C(pg_basebackup -r)), for example V(100M) or V(32768) (kB/s).
    type: str
  checkpoint:
    description:
      - Checkpoint mode requested on the primary at the start of the copy (C(pg_basebackup -c)).
    type: str
    default: fast
    choices: [fast, spread]
  verify_checksums:
    description:
      - Verify data checksums while copying (when the primary has them). V(false) maps to
        C(--no-verify-checksums).
    type: bool
    default: true
  force:
    description:
      - Allow replacing a non-empty O(data_directory) that is not a standby of this primary. The old directory
        is renamed to C(<data_directory>.pgha-moved-<timestamp>), never deleted.
      - A running server is refused even with O(force=true).
    type: bool
    default: false
notes:
  - Supports C(check_mode) and C(diff).
  - Tablespaces outside the data directory are copied by C(pg_basebackup) to the same paths as on the primary;
    they must be empty on the standby host.
  - An empty O(data_directory) that is a mount point is cloned into directly; a non-empty one is refused.
  - Minimum PostgreSQL version - 12 (C(standby.signal) and C(primary_conninfo) in C(postgresql.auto.conf));
    13 for reloading a changed C(primary_conninfo) without a restart. Tested with PostgreSQL 15, the only
    version packaged for Debian 12.
  - Before PostgreSQL 15 the replication protocol cannot tell whether a slot exists, so with
    O(create_slot=true) the slot must not exist yet (C(pg_basebackup -C) creates it); from 15 on an existing
    slot is reused.
requirements:
  - psycopg >= 3.1 (C(python3-psycopg) on Debian) on the managed host
  - PostgreSQL server binaries (C(pg_basebackup), C(pg_ctl), C(pg_controldata)) on the managed host
seealso:
  - module: pgha.cluster.rewind
  - name: pg_basebackup
    description: PostgreSQL documentation of pg_basebackup.
    link: https://www.postgresql.org/docs/current/app-pgbasebackup.html
'''

EXAMPLES = r'''
- name: Clone the primary into the standby's data directory (systemd starts it afterwards)
  pgha.cluster.standby_clone:
    data_directory: /var/lib/postgresql/15/main
    primary_host: pg1.example.com
    replication_user: replicator
    replication_password: "{{ vault_replication_password }}"
    slot_name: pg2
    create_slot: true

- name: Replace an old cluster (moved aside, not deleted) and start the standby right away
  pgha.cluster.standby_clone:
    data_directory: /srv/pg/data
    bin_dir: /usr/lib/postgresql/15/bin
    primary_host: 10.0.0.11
    primary_port: 5432
    replication_password: "{{ vault_replication_password }}"
    application_name: pg3
    max_rate: 200M
    force: true
    start: true
    settings:
      port: 5433
'''

RETURN = r'''
diverged:
  description:
    - Why the data directory, a standby of the same system, cannot follow the primary (it has WAL the primary's
      timeline history does not have). Set only on that refusal; a caller can rewind the node instead
      (pgha.cluster.rewind).
  returned: when the module refused a diverged standby
  type: str
  sample: the node has WAL on timeline 1 from 0/3000148, where the primary's timeline 2 forked off it
action:
  description: What the module did (or would do in check mode).
  returned: always
  type: str
  sample: cloned
  choices: [cloned, reconfigured, unchanged]
system_identifier:
  description: Database system identifier of the primary (and so of the standby).
  returned: always
  type: str
  sample: '7312345678901234567'
bytes_copied:
  description: Size in bytes of the cloned data directory; 0 when nothing was cloned.
  returned: always
  type: int
  sample: 1073741824
duration:
  description: Seconds the module spent.
  returned: always
  type: float
  sample: 12.4
moved_aside_to:
  description: Where the previous content of O(data_directory) was moved (O(force=true)); null otherwise.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main.pgha-moved-20240101T120000
commands:
  description: Commands run (or that would be run), with no password.
  returned: always
  type: list
  elements: str
  sample: ["PGCONNECT_TIMEOUT=10 PGPASSFILE=/tmp/pgha-pass-x/pgpass /usr/lib/postgresql/15/bin/pg_basebackup -D ..."]
primary_conninfo:
  description: The C(primary_conninfo) the standby uses (it never contains a password).
  returned: always
  type: str
  sample: host=pg1 port=5432 user=replicator passfile=/var/lib/postgresql/15/.pgpass_main application_name=pg2 sslmode=prefer
passfile:
  description: Password file referenced by C(primary_conninfo); null when none is used.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/.pgpass_main
changed_settings:
  description: Names of the settings written or corrected in C(postgresql.auto.conf).
  returned: always
  type: list
  elements: str
  sample: [primary_conninfo]
passfile_changed:
  description: Whether the password file was written or its entry updated.
  returned: always
  type: bool
  sample: false
reload_required:
  description: Whether an existing standby's configuration changed so that the server must reload it.
  returned: always
  type: bool
  sample: true
reloaded:
  description: Whether the module reloaded the running server (C(pg_ctl reload)).
  returned: always
  type: bool
  sample: true
restart_required:
  description: Names of changed O(settings) that only take effect after a restart of a running standby.
  returned: always
  type: list
  elements: str
  sample: [port]
started:
  description: Whether the module started the server.
  returned: always
  type: bool
  sample: false
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.clone import clone, refuse_mount_point
from ansible_collections.pgha.cluster.plugins.module_utils.host import os_user_ids, shell_join
from ansible_collections.pgha.cluster.plugins.module_utils.pg_server import (
    Runner,
    default_log_file,
    find_bin_dir,
    inspect_directory,
    major_version,
    require_major,
    server_running,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pgpass import ensure_passfile
from ansible_collections.pgha.cluster.plugins.module_utils.rejoin import divergence, primary_history
from ansible_collections.pgha.cluster.plugins.module_utils.replication_protocol import (
    identify_system,
    replication_connect,
    slot_exists,
)
from ansible_collections.pgha.cluster.plugins.module_utils.standby import (
    apply_standby_config,
    basebackup_conninfo,
    check_root_cert,
    desired_standby_settings,
    replication_params,
    setting_contexts,
    standby_argument_spec,
)


def argument_spec():
    spec = standby_argument_spec()
    spec.update(
        primary_host=dict(type='str', required=True),
        primary_port=dict(type='int', default=5432),
        primary_ssl_mode=dict(type='str', default='prefer',
                              choices=['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']),
        primary_ssl_root_cert=dict(type='path'),
        create_slot=dict(type='bool', default=False),
        wal_method=dict(type='str', default='stream', choices=['stream', 'fetch']),
        max_rate=dict(type='str'),
        checkpoint=dict(type='str', default='fast', choices=['fast', 'spread']),
        verify_checksums=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    started_at = time.monotonic()
    p = module.params
    data_directory = os.path.normpath(p['data_directory'])
    result = dict(changed=False, action='unchanged', system_identifier=None, bytes_copied=0, duration=0.0,
                  moved_aside_to=None, commands=[], primary_conninfo=None, passfile=None, changed_settings=[],
                  passfile_changed=False, reload_required=False, reloaded=False, restart_required=[],
                  started=False)

    # -- validate everything before touching anything ------------------------
    if p['create_slot'] and not p['slot_name']:
        module.fail_json(msg='create_slot=true needs slot_name; set slot_name or drop create_slot')
    if p['create_slot'] and p['wal_method'] != 'stream':
        module.fail_json(msg='create_slot=true needs wal_method=stream (pg_basebackup can only use a slot while '
                             'streaming); set wal_method: stream or create the slot beforehand')
    if p['bin_dir'] and not os.path.isfile(os.path.join(p['bin_dir'], 'pg_basebackup')):
        module.fail_json(msg="bin_dir '%s' does not contain pg_basebackup; set bin_dir to the PostgreSQL "
                             "server binaries directory (for example /usr/lib/postgresql/15/bin)" % p['bin_dir'])
    uid, gid = os_user_ids(module, p['os_user'])
    parent = os.path.dirname(data_directory)
    if not os.path.isdir(parent):
        module.fail_json(msg="The parent directory of data_directory ('%s') does not exist; create it or fix "
                             "data_directory" % parent)
    check_root_cert(module, p)
    repl = replication_params(p)
    wanted = desired_standby_settings(repl, p['settings'])
    result['primary_conninfo'] = wanted['primary_conninfo']
    result['passfile'] = repl['passfile']

    conn = replication_connect(module, repl)
    try:
        primary = identify_system(module, conn)
        primary['major'] = major_version(conn.info.server_version)
        history = primary_history(module, conn, primary['timeline'])
        slot_pre_exists = slot_exists(module, conn, repl['slot_name']) if repl['slot_name'] else None
    except Exception as exc:
        module.fail_json(msg='Cannot query the primary %s:%s over the replication protocol: %s'
                             % (repl['host'], repl['port'], exc))
    finally:
        conn.close()
    result['system_identifier'] = primary['system_identifier']
    # A standby runs the primary's major version: pick those binaries, never just the newest installed.
    bin_dir = find_bin_dir(module, p['bin_dir'], primary['major'])
    require_major(module, bin_dir, primary['major'], 'the primary %s:%s' % (repl['host'], repl['port']))
    runner = Runner(module, bin_dir, p['os_user'])
    result['commands'] = runner.commands
    if repl['slot_name'] and slot_pre_exists is False and not p['create_slot']:
        module.fail_json(msg="Replication slot '%s' does not exist on the primary %s:%s; create it first or set "
                             "create_slot: true" % (repl['slot_name'], repl['host'], repl['port']))

    target = inspect_directory(module, bin_dir, data_directory)
    same_standby = (target['kind'] == 'cluster' and target['standby_signal']
                    and target['system_identifier'] == primary['system_identifier'])
    if same_standby:
        # A standby of the same system can still have left the primary's history (a former primary that
        # kept writing after the failover): repointed, it would wait for WAL it can never replay.
        primary['diverged'] = divergence(runner, target, primary['timeline'], history)
        if primary['diverged'] and not p['force']:
            module.fail_json(msg="data_directory '%s' holds a standby of this system that cannot follow the primary "
                                 "%s:%s: %s. Rewind it onto the primary (pgha.cluster.rewind), or set force: true to "
                                 "move it aside to %s.pgha-moved-<timestamp> and clone afresh"
                                 % (data_directory, repl['host'], repl['port'], primary['diverged'], data_directory),
                             diverged=primary['diverged'], **result)
        same_standby = not primary['diverged']

    if same_standby:
        reconfigure(module, runner, result, data_directory, wanted, repl, uid, gid, bin_dir)
    else:
        if target['kind'] in ('cluster', 'other'):
            if server_running(module, bin_dir, data_directory, module.params['os_user']):
                module.fail_json(msg="A PostgreSQL server is running on data_directory '%s'; stop it first (this "
                                     "module never replaces a running server, even with force)" % data_directory)
            if not p['force']:
                what = describe_target(target, primary)
                module.fail_json(msg="data_directory '%s' is not empty: %s. Set force: true to move it aside to "
                                     "%s.pgha-moved-<timestamp> and clone, or choose another data_directory"
                                     % (data_directory, what, data_directory))
        refuse_mount_point(module, data_directory, target)
        result['changed'] = True
        result['action'] = 'cloned'
        result['changed_settings'] = sorted(wanted)
        if module._diff:
            result['diff'] = dict(before_header=data_directory, after_header=data_directory,
                                  before='%s\n' % describe_target(target, primary),
                                  after='standby of %s:%s (system identifier %s)\n'
                                        % (repl['host'], repl['port'], primary['system_identifier']))
        if not module.check_mode:
            done = clone(module, runner, repl, data_directory, uid, gid,
                         dict(wal_method=p['wal_method'], checkpoint=p['checkpoint'], max_rate=p['max_rate'],
                              verify_checksums=p['verify_checksums']),
                         target, create_slot=p['create_slot'], slot_pre_exists=bool(slot_pre_exists),
                         extra_settings=p['settings'])
            result['moved_aside_to'] = done['moved_aside_to']
            result['bytes_copied'] = done['bytes_copied']
            if repl['password']:
                result['passfile_changed'] = ensure_passfile(module, repl['passfile'], repl['host'],
                                                             repl['port'], repl['user'], repl['password'],
                                                             uid, gid)
        else:
            runner.commands.append(shell_join([os.path.join(bin_dir, 'pg_basebackup'), '-D',
                                               '<temporary directory next to %s>' % data_directory,
                                               '-d', basebackup_conninfo(repl), '-X', p['wal_method'],
                                               '-c', p['checkpoint'], '-w']))
            if target['kind'] in ('cluster', 'other'):
                result['moved_aside_to'] = '%s.pgha-moved-<timestamp>' % data_directory

    if p['start'] and (result['action'] == 'cloned' or
                       not server_running(module, bin_dir, data_directory, p['os_user'], settle=0)):
        # check mode predicts the start of a stopped standby as well as of a fresh clone
        if not module.check_mode:
            runner.start(data_directory, p['start_log_file'] or default_log_file(data_directory))
        result['started'] = True
        result['changed'] = True

    result['duration'] = round(time.monotonic() - started_at, 3)
    module.exit_json(**result)


def describe_target(target, primary):
    kind = target['kind']
    if kind == 'absent':
        return 'absent'
    if kind == 'empty':
        return 'empty directory'
    if kind == 'other':
        return 'holds files that are not a PostgreSQL data directory'
    if primary.get('diverged'):
        return 'holds a standby that diverged from the primary (%s)' % primary['diverged']
    if target['system_identifier'] != primary['system_identifier']:
        return 'holds another cluster (system identifier %s, the primary has %s)' % (
            target['system_identifier'], primary['system_identifier'])
    return 'holds a cluster of the same system (%s) that is not a standby (no standby.signal; state %s), ' \
           'for example a promoted former standby' % (target['system_identifier'], target['cluster_state'])


def reconfigure(module, runner, result, data_directory, wanted, repl, uid, gid, bin_dir):
    """Already a standby of this primary: correct its settings in place."""
    applied = apply_standby_config(module, data_directory, wanted, uid, gid, module.check_mode)
    if repl['password']:
        result['passfile_changed'] = ensure_passfile(module, repl['passfile'], repl['host'], repl['port'],
                                                     repl['user'], repl['password'], uid, gid)
    result['changed_settings'] = applied['changed_settings']
    if applied['changed']:
        result['action'] = 'reconfigured'
        result['changed'] = True
        result['reload_required'] = True
        if module._diff:
            result['diff'] = dict(before_header=os.path.join(data_directory, 'postgresql.auto.conf'),
                                  after_header=os.path.join(data_directory, 'postgresql.auto.conf'),
                                  before=applied['before'], after=applied['after'])
        running = server_running(module, bin_dir, data_directory, module.params['os_user'], settle=0)
        contexts = setting_contexts(module, bin_dir) if running else {}
        result['restart_required'] = sorted(k for k in applied['changed_settings']
                                            if contexts.get(k) == 'postmaster')
        if running and not module.check_mode:
            runner.reload(data_directory)
            result['reloaded'] = True
    elif result['passfile_changed']:
        result['changed'] = True
        result['action'] = 'reconfigured'


if __name__ == '__main__':
    main()
