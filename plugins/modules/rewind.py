#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: rewind
short_description: Rejoin a former primary to the new primary with pg_rewind
description:
  - Turns a former primary (or a standby left on an old timeline) into a streaming standby of a new primary
    with C(pg_rewind), then writes C(standby.signal), C(primary_conninfo) (with a C(passfile=), never a
    password) and C(primary_slot_name), sharing that code with M(pgha.cluster.standby_clone).
  - The upstream of the options shared with M(pgha.cluster.standby_clone) is the source (O(source_host)).
  - Checks the prerequisites before changing anything - same database system identifier, C(wal_log_hints) or
    data checksums, server stopped (or O(stop_server=true)), source reachable with the given credentials.
  - A node that crashed (cluster state C(in production)) is recovered first. C(pg_rewind) 13 and later does
    that itself by running the server once in single-user mode; the module passes O(config_file) to it
    (C(--config-file), PostgreSQL 15+) or, for older versions with O(config_file), runs the single-user
    recovery itself.
  - When the source's control file still shows the old timeline right after a promotion, the module runs
    C(CHECKPOINT) on the source (PostgreSQL 15 C(pg_rewind) compares the checkpoint timelines).
  - With O(fallback=reclone), a node that cannot be rewound (another system identifier, neither
    C(wal_log_hints) nor checksums, C(pg_rewind) failing, no data directory) is cloned afresh with
    C(pg_basebackup) instead; the old directory is moved aside, never deleted. The result says so with
    RV(method=reclone) and RV(fallback_reason).
  - Refuses, before it stops, recovers or writes anything (and in check mode alike), with a message that says
    what it found and what to do
    - when the source is the node itself (its C(postmaster.pid), read over SQL with C(pg_read_binary_file),
      is the running node's own; a standby shares its primary's system identifier, so that cannot tell them
      apart);
    - when the node is a primary (running, or stopped as one) of the same system and the source is not on a
      newer timeline - the source is then its own standby or behind it, was not promoted, and a rewind would
      leave no primary at all. Promote the source first;
    - when it cannot tell whether the source is the node itself (the source user may not read
      C(postmaster.pid)).
  - Idempotent. A node that already is a standby (C(standby.signal)) of the same system whose
    C(primary_conninfo) points at the source, and that is on the source's current timeline, is not rewound; its
    standby settings are only corrected in place when they differ (and a running server is reloaded). A running
    node is asked over SQL (C(pg_stat_wal_receiver) - streaming from O(source_host):O(source_port) on the
    source's timeline; the module waits up to O(connect_timeout) seconds, at most 10, for it to stream), since
    its control file keeps the old timeline until its next restartpoint. It logs in over the node's own socket
    (or loopback address) as O(source_user); when that fails, its timeline is read from its files and a warning
    says so.
  - In check mode the module runs C(pg_rewind --dry-run --no-ensure-shutdown), which touches nothing, when the
    target is cleanly shut down; it never stops, recovers or writes anything.
version_added: 0.1.0
author:
  - pgha.cluster contributors (@pgha)
extends_documentation_fragment:
  - pgha.cluster.standby
options:
  config_file:
    description:
      - Main configuration file of the node when it is not in the data directory (Debian keeps it under
        C(/etc/postgresql)). Used for crash recovery and by O(start).
    type: path
  source_host:
    description:
      - Host name or address of the new primary (the rewind source, also the primary the node will follow).
    type: str
    required: true
  source_port:
    description:
      - Port of the new primary.
    type: int
    default: 5432
  source_user:
    description:
      - Role C(pg_rewind) connects as - a superuser, or a rewind role with C(EXECUTE) on C(pg_ls_dir),
        C(pg_stat_file), C(pg_read_binary_file(text)), C(pg_read_binary_file(text, bigint, bigint, boolean))
        (and C(pg_checkpoint) membership for the automatic C(CHECKPOINT)).
    type: str
    default: postgres
  source_password:
    description:
      - Password of O(source_user), given to C(pg_rewind) through a temporary 0600 C(PGPASSFILE). Never logged,
        put on a command line or returned.
    type: str
  source_db:
    description:
      - Database C(pg_rewind) connects to on the source.
    type: str
    default: postgres
  source_ssl_mode:
    description:
      - libpq C(sslmode) for the connections to the source and in C(primary_conninfo).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  source_ssl_root_cert:
    description:
      - CA certificate file on the managed host that verifies the source's server certificate (libpq
        C(sslrootcert)), for C(pg_rewind), the reclone fallback and C(primary_conninfo).
      - The O(os_user) must be able to read it.
    type: path
  stop_server:
    description:
      - Stop a running server on O(data_directory) with C(pg_ctl stop -m fast) before rewinding. When V(false),
        a running server makes the module fail.
    type: bool
    default: false
  restore_target_wal:
    description:
      - Pass C(--restore-target-wal) so that C(pg_rewind) fetches WAL missing from C(pg_wal) with the node's
        C(restore_command).
    type: bool
    default: false
  fallback:
    description:
      - What to do when a rewind is impossible. V(none) fails with the reason; V(reclone) clones the node afresh
        from the source (as M(pgha.cluster.standby_clone) with C(force=true)).
    type: str
    default: none
    choices: [none, reclone]
notes:
  - Supports C(check_mode) and C(diff).
  - The source must not be the node itself (refused); a standby can be the source (PostgreSQL 13+).
  - Minimum PostgreSQL version of the node and the source - 13 (C(pg_rewind) running crash recovery itself,
    a standby as source, C(pg_stat_wal_receiver.sender_host)). Tested with PostgreSQL 15, the only version
    packaged for Debian 12.
requirements:
  - psycopg >= 3.1 (C(python3-psycopg) on Debian) on the managed host
  - PostgreSQL server binaries (C(pg_rewind), C(pg_ctl), C(pg_controldata)) on the managed host
seealso:
  - module: pgha.cluster.standby_clone
  - name: pg_rewind
    description: PostgreSQL documentation of pg_rewind.
    link: https://www.postgresql.org/docs/current/app-pgrewind.html
'''

EXAMPLES = r'''
- name: Rejoin the old primary after a failover (rewind, or re-clone when rewinding is impossible)
  pgha.cluster.rewind:
    data_directory: /var/lib/postgresql/15/main
    config_file: /etc/postgresql/15/main/postgresql.conf
    source_host: pg2.example.com
    source_user: rewind
    source_password: "{{ vault_rewind_password }}"
    replication_password: "{{ vault_replication_password }}"
    slot_name: pg1
    stop_server: true
    fallback: reclone

- name: What would pg_rewind do? (runs pg_rewind --dry-run)
  pgha.cluster.rewind:
    data_directory: /var/lib/postgresql/15/main
    source_host: pg2.example.com
    source_password: "{{ vault_superuser_password }}"
  check_mode: true
'''

RETURN = r'''
method:
  description: How the node was rejoined (or would be, in check mode) - V(none) when it already followed the source.
  returned: always
  type: str
  sample: rewind
  choices: [rewind, reclone, none]
fallback_reason:
  description: Why a rewind was impossible and the node was cloned afresh; null otherwise.
  returned: always
  type: str
  sample: wal_log_hints is off and data checksums are disabled on the node
duration:
  description: Seconds the module spent.
  returned: always
  type: float
  sample: 3.2
old_timeline:
  description: Timeline of the node before the module ran (null when it was no cluster).
  returned: always
  type: int
  sample: 1
source_timeline:
  description: Current timeline of the source.
  returned: always
  type: int
  sample: 2
system_identifier:
  description: Database system identifier of the source.
  returned: always
  type: str
  sample: '7312345678901234567'
crash_recovery:
  description: Whether the node had not been shut down cleanly and went through crash recovery first.
  returned: always
  type: bool
  sample: true
stopped:
  description: Whether the module stopped a running server (O(stop_server=true)).
  returned: always
  type: bool
  sample: false
started:
  description: Whether the module started the server.
  returned: always
  type: bool
  sample: true
moved_aside_to:
  description: Where the old directory went when it was re-cloned; null otherwise.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main.pgha-moved-20240101T120000
bytes_copied:
  description: Size in bytes of the re-cloned directory (re-clone only; 0 otherwise).
  returned: always
  type: int
  sample: 0
commands:
  description: Commands run (or that would be run), with no password.
  returned: always
  type: list
  elements: str
  sample: ["PGPASSFILE=/tmp/pgha-pass-x/pgpass /usr/lib/postgresql/15/bin/pg_rewind -D ... --source-server '...'"]
primary_conninfo:
  description: The C(primary_conninfo) the node uses (never contains a password).
  returned: always
  type: str
  sample: host=pg2 port=5432 user=replicator passfile=/var/lib/postgresql/15/.pgpass_main application_name=pg1
passfile:
  description: Password file referenced by C(primary_conninfo); null when none is used.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/.pgpass_main
changed_settings:
  description: Names of the standby settings written or corrected in C(postgresql.auto.conf).
  returned: always
  type: list
  elements: str
  sample: [primary_conninfo, primary_slot_name]
reload_required:
  description: Whether the settings of a running standby changed so that it must reload them.
  returned: always
  type: bool
  sample: false
reloaded:
  description: Whether the module reloaded the running server.
  returned: always
  type: bool
  sample: false
dry_run_output:
  description: Output of C(pg_rewind --dry-run) in check mode; null when no dry run was possible.
  returned: always
  type: str
  sample: 'pg_rewind: servers diverged at WAL location 0/3000108 on timeline 1'
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    build_conninfo,
    connect,
    fetch_one,
    parse_conninfo,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pg_server import (
    CONTROLDATA_STATES_CLEAN,
    as_user,
    data_directory_version,
    default_log_file,
    find_bin_dir,
    inspect_directory,
    Runner,
    server_running,
)
from ansible_collections.pgha.cluster.plugins.module_utils.instance import connect_local
from ansible_collections.pgha.cluster.plugins.module_utils.replication import current_timeline
from ansible_collections.pgha.cluster.plugins.module_utils.rejoin import (
    demotes_a_newer_primary,
    follows_source,
    source_is_target,
)
from ansible_collections.pgha.cluster.plugins.module_utils.clone import clone, refuse_mount_point
from ansible_collections.pgha.cluster.plugins.module_utils.host import os_user_ids, read_text
from ansible_collections.pgha.cluster.plugins.module_utils.pgpass import TempPassfile, ensure_passfile
from ansible_collections.pgha.cluster.plugins.module_utils.replication_protocol import (
    replication_connect,
    slot_exists,
)
from ansible_collections.pgha.cluster.plugins.module_utils.standby import (
    AUTO_CONF,
    apply_standby_config,
    check_root_cert,
    desired_standby_settings,
    parse_auto_conf,
    replication_params,
    standby_argument_spec,
)

SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']


def argument_spec():
    spec = standby_argument_spec()
    spec.update(
        config_file=dict(type='path'),
        source_host=dict(type='str', required=True),
        source_port=dict(type='int', default=5432),
        source_user=dict(type='str', default='postgres'),
        source_password=dict(type='str', no_log=True),
        source_db=dict(type='str', default='postgres'),
        source_ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES),
        source_ssl_root_cert=dict(type='path'),
        stop_server=dict(type='bool', default=False),
        restore_target_wal=dict(type='bool', default=False),
        fallback=dict(type='str', default='none', choices=['none', 'reclone']),
    )
    return spec


def connect_source(module):
    """A connection to the rewind source, from the source_* options."""
    p = module.params
    params = dict(source_host=p['source_host'], source_port=p['source_port'], source_user=p['source_user'],
                  source_password=p['source_password'], source_db=p['source_db'],
                  ssl_mode=p['source_ssl_mode'], ca_cert=p['source_ssl_root_cert'],
                  connect_timeout=p['connect_timeout'])
    return connect(module, params, prefix='source_')


def source_state(module, data_directory, target_running):
    """System identifier and timelines of the source, read over SQL, and whether it is the node itself."""
    p = module.params
    conn = connect_source(module)
    try:
        row = fetch_one(conn, 'SELECT system_identifier::text AS sysid, pg_is_in_recovery() AS in_recovery, '
                              '(SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline '
                              'FROM pg_control_system()')
        current = max(row['checkpoint_timeline'], current_timeline(conn, row['in_recovery'])[0] or 0)
        itself = source_is_target(conn, data_directory, target_running)
        return dict(system_identifier=row['sysid'], in_recovery=row['in_recovery'], timeline=current,
                    checkpoint_timeline=row['checkpoint_timeline'], version=conn.info.server_version,
                    host=p['source_host'], port=p['source_port'], itself=itself)
    except Exception as exc:
        module.fail_json(msg='Cannot read the state of the source %s:%s as %s: %s. source_user must be a superuser '
                             'or a rewind role with the documented grants.'
                             % (p['source_host'], p['source_port'], p['source_user'], exc))
    finally:
        conn.close()


def checkpoint_source(module):
    conn = connect_source(module)
    try:
        conn.execute('CHECKPOINT')
    except Exception as exc:
        module.fail_json(msg='CHECKPOINT on the source failed (%s). The source was promoted but its control file '
                             'still shows the old timeline; grant pg_checkpoint to source_user or run CHECKPOINT on '
                             'the new primary, then retry.' % exc)
    finally:
        conn.close()


def local_timeline(target):
    return max(target.get('timeline') or 0, target.get('min_recovery_timeline') or 0) or None


def plan(module, result):
    """Every read and check, and every refusal, before anything changes; returns what act() needs."""
    p = module.params
    data_directory = os.path.normpath(p['data_directory'])
    if p['bin_dir'] and not os.path.isfile(os.path.join(p['bin_dir'], 'pg_rewind')):
        module.fail_json(msg="bin_dir '%s' does not contain pg_rewind; set bin_dir to the PostgreSQL server "
                             "binaries directory (for example /usr/lib/postgresql/15/bin)" % p['bin_dir'])
    bin_dir = find_bin_dir(module, p['bin_dir'], data_directory_version(data_directory))
    uid, gid = os_user_ids(module, p['os_user'])
    if p['config_file'] and not os.path.isfile(p['config_file']):
        module.fail_json(msg="config_file '%s' does not exist; fix config_file or leave it unset when "
                             "postgresql.conf is in the data directory" % p['config_file'])
    check_root_cert(module, p, prefix='source_')
    runner = Runner(module, bin_dir, p['os_user'])
    result['commands'] = runner.commands

    # Read-only inspection of the node first: the refusals below depend on it.
    target = inspect_directory(module, bin_dir, data_directory)
    result['old_timeline'] = local_timeline(target) if target['kind'] == 'cluster' else None
    running = server_running(module, bin_dir, data_directory, p['os_user']) if target['kind'] == 'cluster' else False

    source = source_state(module, data_directory, running)
    result['system_identifier'] = source['system_identifier']
    result['source_timeline'] = source['timeline']
    if source['itself']:
        module.fail_json(msg='Refusing to rewind %s: %s.' % (data_directory, source['itself']), **result)

    repl = replication_params(p, prefix='source_')
    wanted = desired_standby_settings(repl, p['settings'])
    result['primary_conninfo'] = wanted['primary_conninfo']
    result['passfile'] = repl['passfile']
    conn = replication_connect(module, repl)
    try:
        slot_ok = slot_exists(module, conn, repl['slot_name']) if repl['slot_name'] else True
    finally:
        conn.close()
    if slot_ok is False:
        module.fail_json(msg="Replication slot '%s' (slot_name) does not exist on the source %s:%s; create it "
                             "first (pgha.cluster.replication_slot) or leave slot_name unset"
                             % (repl['slot_name'], repl['host'], repl['port']))

    local_conn = None
    if running:
        # The node's own view over SQL (its socket, the source's credentials: same roles, same cluster).
        local_conn, dummy = connect_local(data_directory, p['source_user'], p['source_password'], p['source_db'],
                                          p['connect_timeout'])
    try:
        refusal = demotes_a_newer_primary(target, running, local_conn, source)
        if refusal:
            module.fail_json(msg='Refusing to rewind %s: %s.' % (data_directory, refusal), **result)
        configured = parse_conninfo(parse_auto_conf(read_text(os.path.join(data_directory, AUTO_CONF)))
                                    .get('primary_conninfo', '')) if target['kind'] == 'cluster' else {}
        following, timeline, note = follows_source(target, running, local_conn, source, repl, configured,
                                                   wait_seconds=min(p['connect_timeout'], 10))
    finally:
        if local_conn is not None:
            local_conn.close()
    if note:
        module.warn(note)
    todo = dict(data_directory=data_directory, bin_dir=bin_dir, uid=uid, gid=gid, runner=runner, target=target,
                running=running, source=source, repl=repl, wanted=wanted, following=following, reason=None,
                crashed=False)
    if following:
        result['old_timeline'] = timeline
        return todo

    # -- can it be rewound? ---------------------------------------------------
    reason = None
    if target['kind'] != 'cluster':
        reason = 'data_directory %s is no PostgreSQL data directory (%s)' % (data_directory, target['kind'])
    elif target['system_identifier'] != source['system_identifier']:
        reason = 'the node belongs to another cluster (system identifier %s, the source has %s)' % (
            target['system_identifier'], source['system_identifier'])
    elif not target['wal_log_hints'] and not target['data_checksums']:
        reason = 'wal_log_hints is off and data checksums are disabled on the node'
    if reason and p['fallback'] != 'reclone':
        module.fail_json(msg='Cannot rewind %s: %s. Set fallback: reclone to clone it afresh from the source '
                             '(the old directory is moved aside), or fix the node.' % (data_directory, reason),
                         **result)
    if reason:
        refuse_mount_point(module, data_directory, target)
    if running and not p['stop_server']:
        module.fail_json(msg="A PostgreSQL server is running on data_directory '%s'; set stop_server: true to "
                             "stop it (pg_ctl stop -m fast) before the rewind, or stop it yourself" % data_directory,
                         **result)
    todo['crashed'] = target['kind'] == 'cluster' and not running and \
        target['cluster_state'] not in CONTROLDATA_STATES_CLEAN
    todo['reason'] = reason
    result['crash_recovery'] = todo['crashed']
    result['changed'] = True
    return todo


def rewind_source(module):
    """The conninfo pg_rewind gets (no password) and the entries of its temporary PGPASSFILE."""
    p = module.params
    conninfo = build_conninfo([('host', p['source_host']), ('port', p['source_port']),
                               ('user', p['source_user']), ('dbname', p['source_db']),
                               ('sslmode', p['source_ssl_mode']),
                               ('sslrootcert', p['source_ssl_root_cert']),
                               ('application_name', 'pgha.cluster-rewind')])
    return conninfo, [(p['source_host'], p['source_port'], p['source_user'], p['source_password'], '*')]


def report(module, todo, result):
    """Check mode: what the run would do, with pg_rewind --dry-run where it can run without a change."""
    p = module.params
    source = todo['source']
    if todo['reason']:
        result.update(method='reclone', fallback_reason=todo['reason'])
    else:
        result['method'] = 'rewind'
        why_not = None
        if todo['running']:
            why_not = 'the server is running (it would be stopped first)'
        elif todo['crashed']:
            why_not = 'the node was not shut down cleanly (crash recovery would run first)'
        elif source['checkpoint_timeline'] < source['timeline'] and not source['in_recovery']:
            why_not = 'the source needs a CHECKPOINT after its promotion first'
        if why_not:
            result['dry_run_output'] = None
            result['msg'] = 'pg_rewind --dry-run skipped: %s' % why_not
        else:
            conninfo, entries = rewind_source(module)
            with TempPassfile(todo['uid'], todo['gid'], entries) as pf:
                rc, out, err = todo['runner'].run('pg_rewind', ['-D', todo['data_directory'], '--source-server',
                                                                conninfo, '--dry-run', '--no-ensure-shutdown'],
                                                  environ={'PGPASSFILE': pf.path}, check=False)
            result['dry_run_output'] = (err + out).strip()
            if rc != 0:
                if p['fallback'] != 'reclone':
                    module.fail_json(msg='pg_rewind --dry-run failed: %s' % (err or out).strip(), **result)
                result.update(method='reclone', fallback_reason='pg_rewind --dry-run failed: %s'
                              % (err or out).strip().splitlines()[-1])
    # the node is down after the rewind (stopped first if it ran), so start would start it
    result['started'] = p['start']
    result['stopped'] = todo['running']


def act(module, todo, result):
    """Stop the node if it runs, rewind it, and re-clone it when that is impossible and allowed."""
    p = module.params
    data_directory, runner, repl, wanted = todo['data_directory'], todo['runner'], todo['repl'], todo['wanted']
    target, source, reason = todo['target'], todo['source'], todo['reason']
    if todo['running']:
        runner.stop(data_directory, mode='fast')
        result['stopped'] = True
        target = inspect_directory(module, todo['bin_dir'], data_directory)

    if not reason:
        version = int(data_directory_version(data_directory).split('.')[0])
        if source['checkpoint_timeline'] < source['timeline'] and not source['in_recovery']:
            checkpoint_source(module)
        conninfo, entries = rewind_source(module)
        args = ['-D', data_directory, '--source-server', conninfo]
        if p['restore_target_wal']:
            args.append('--restore-target-wal')
        if p['config_file'] and version >= 15:
            # used by pg_rewind for its own crash recovery and for restore_command
            args += ['--config-file', p['config_file']]
        elif todo['crashed'] and p['config_file']:
            single_user_recovery(module, runner, data_directory, p['config_file'])
        with TempPassfile(todo['uid'], todo['gid'], entries) as pf:
            rc, out, err = runner.run('pg_rewind', args, environ={'PGPASSFILE': pf.path}, check=False)
        if rc != 0:
            message = (err or out).strip()
            if p['fallback'] != 'reclone':
                hint = ''
                if 'configuration file' in message and not p['config_file']:
                    hint = ' The node keeps its configuration outside the data directory: set config_file (Debian: ' \
                           '/etc/postgresql/<version>/<cluster>/postgresql.conf).'
                module.fail_json(msg='pg_rewind failed (rc=%d): %s.%s Set fallback: reclone to clone the node afresh '
                                     'instead.' % (rc, message, hint), **result)
            reason = 'pg_rewind failed: %s' % (message.splitlines() or ['rc=%d' % rc])[-1]
            target = inspect_directory(module, todo['bin_dir'], data_directory)
        else:
            result['method'] = 'rewind'
            finish_config(module, runner, result, data_directory, wanted, repl, todo['uid'], todo['gid'], False,
                          reconfigure=False)

    if reason:
        result.update(method='reclone', fallback_reason=reason)
        done = clone(module, runner, repl, data_directory, todo['uid'], todo['gid'],
                     dict(wal_method='stream', checkpoint='fast', max_rate=None, verify_checksums=True),
                     target, create_slot=False, slot_pre_exists=True, extra_settings=p['settings'])
        result['moved_aside_to'] = done['moved_aside_to']
        result['bytes_copied'] = done['bytes_copied']
        result['changed_settings'] = sorted(wanted)
        if repl['password']:
            ensure_passfile(module, repl['passfile'], repl['host'], repl['port'], repl['user'], repl['password'],
                            todo['uid'], todo['gid'])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    started_at = time.monotonic()
    result = dict(changed=False, method='none', fallback_reason=None, duration=0.0, old_timeline=None,
                  source_timeline=None, system_identifier=None, crash_recovery=False, stopped=False,
                  started=False, moved_aside_to=None, bytes_copied=0, commands=[], primary_conninfo=None,
                  passfile=None, changed_settings=[], reload_required=False, reloaded=False, dry_run_output=None)
    todo = plan(module, result)
    if todo['following']:
        # already a standby of the source: only its settings are corrected in place
        finish_config(module, todo['runner'], result, todo['data_directory'], todo['wanted'], todo['repl'],
                      todo['uid'], todo['gid'], todo['running'], reconfigure=True)
    elif module.check_mode:
        report(module, todo, result)
        result['duration'] = round(time.monotonic() - started_at, 3)
        module.exit_json(**result)
    else:
        act(module, todo, result)
    maybe_start(module, todo['runner'], result, todo['data_directory'], todo['bin_dir'])
    result['duration'] = round(time.monotonic() - started_at, 3)
    module.exit_json(**result)


def single_user_recovery(module, runner, data_directory, config_file):
    """Crash recovery for pg_rewind < 15 with the configuration outside the data directory."""
    runner.commands.append('postgres --single -F -D %s -c config_file=%s template1 < /dev/null'
                           % (data_directory, config_file))
    cmd = as_user(module, runner.os_user, [os.path.join(runner.bin_dir, 'postgres'), '--single', '-F', '-D',
                                           data_directory, '-c', 'config_file=%s' % config_file, 'template1'])
    rc, out, err = module.run_command(cmd, data='', cwd='/')
    if rc != 0:
        module.fail_json(msg='Single-user crash recovery failed (rc=%d): %s' % (rc, (err or out).strip()),
                         commands=runner.commands)


def finish_config(module, runner, result, data_directory, wanted, repl, uid, gid, running, reconfigure):
    applied = apply_standby_config(module, data_directory, wanted, uid, gid, module.check_mode)
    passfile_changed = False
    if repl['password']:
        passfile_changed = ensure_passfile(module, repl['passfile'], repl['host'], repl['port'], repl['user'],
                                           repl['password'], uid, gid)
    result['changed_settings'] = applied['changed_settings']
    if applied['changed'] or passfile_changed:
        result['changed'] = True
    if applied['changed'] and module._diff:
        result['diff'] = dict(before_header=os.path.join(data_directory, AUTO_CONF),
                              after_header=os.path.join(data_directory, AUTO_CONF),
                              before=applied['before'], after=applied['after'])
    if reconfigure and applied['changed']:
        result['reload_required'] = True
        if running and not module.check_mode:
            runner.reload(data_directory)
            result['reloaded'] = True


def maybe_start(module, runner, result, data_directory, bin_dir):
    p = module.params
    if not p['start'] or server_running(module, bin_dir, data_directory, p['os_user'], settle=0):
        return
    if not module.check_mode:
        runner.start(data_directory, p['start_log_file'] or default_log_file(data_directory), p['config_file'])
    result['started'] = True
    result['changed'] = True


if __name__ == '__main__':
    main()
