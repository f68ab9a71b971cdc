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
options:
  data_directory:
    description:
      - Data directory of the node to rejoin.
    type: path
    required: true
  bin_dir:
    description:
      - Directory of the PostgreSQL server binaries (C(pg_rewind), C(pg_ctl), C(pg_controldata), C(postgres)).
      - Found automatically (Debian and RPM layouts, then E(PATH)) when omitted.
    type: path
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
  replication_user:
    description:
      - Role with the C(REPLICATION) attribute the node streams with (written into C(primary_conninfo)).
    type: str
    default: replicator
  replication_password:
    description:
      - Password of O(replication_user), stored in O(passfile). Never logged or returned.
    type: str
  passfile:
    description:
      - Password file referenced by C(passfile=) in C(primary_conninfo) (mode 0600, owned by O(os_user)).
      - Defaults to C(.pgpass_<name>) in the parent directory of O(data_directory) when O(replication_password)
        is set, as in M(pgha.cluster.standby_clone).
    type: path
  application_name:
    description:
      - C(application_name) of the standby. Defaults to the short host name.
    type: str
  slot_name:
    description:
      - Physical replication slot on the new primary written as C(primary_slot_name). It must exist (checked on
        PostgreSQL 15 and later); when omitted, any C(primary_slot_name) is removed.
    type: str
  settings:
    description:
      - Extra server settings written to C(postgresql.auto.conf) after the rewind, for example a node-specific C(port).
        C(pg_rewind) copies the source's configuration files that live in the data directory, so node-specific
        settings kept there must be given here.
    type: dict
    default: {}
  stop_server:
    description:
      - Stop a running server on O(data_directory) with C(pg_ctl stop -m fast) before rewinding. When V(false),
        a running server makes the module fail.
    type: bool
    default: false
  start:
    description:
      - Start the node with C(pg_ctl start) once it is a standby. Leave V(false) when systemd starts it.
    type: bool
    default: false
  start_log_file:
    description:
      - Server log file for C(pg_ctl start -l). Defaults to C(<data_directory>.log).
    type: path
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
  os_user:
    description:
      - Operating system account that owns the data directory and runs the server; the binaries run as it when
        the module runs as root.
    type: str
    default: postgres
  connect_timeout:
    description:
      - Seconds to wait for connections to the source.
    type: int
    default: 10
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
    find_bin_dir,
)
from ansible_collections.pgha.cluster.plugins.module_utils.instance import connect_local
from ansible_collections.pgha.cluster.plugins.module_utils.rejoin import (
    demotes_a_newer_primary,
    follows_source,
    source_is_target,
)
from ansible_collections.pgha.cluster.plugins.module_utils.standby import (
    AUTO_CONF,
    TempPassfile,
    Runner,
    apply_standby_config,
    check_root_cert,
    clone,
    default_log_file,
    desired_standby_settings,
    ensure_passfile,
    inspect_directory,
    os_user_ids,
    parse_auto_conf,
    read_text,
    refuse_mount_point,
    replication_connect,
    replication_params,
    server_running,
    slot_exists,
)

SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']


def argument_spec():
    return dict(
        data_directory=dict(type='path', required=True),
        bin_dir=dict(type='path'),
        config_file=dict(type='path'),
        source_host=dict(type='str', required=True),
        source_port=dict(type='int', default=5432),
        source_user=dict(type='str', default='postgres'),
        source_password=dict(type='str', no_log=True),
        source_db=dict(type='str', default='postgres'),
        source_ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES),
        source_ssl_root_cert=dict(type='path'),
        replication_user=dict(type='str', default='replicator'),
        replication_password=dict(type='str', no_log=True),
        passfile=dict(type='path', no_log=False),
        application_name=dict(type='str'),
        slot_name=dict(type='str'),
        settings=dict(type='dict', default={}),
        stop_server=dict(type='bool', default=False),
        start=dict(type='bool', default=False),
        start_log_file=dict(type='path'),
        restore_target_wal=dict(type='bool', default=False),
        fallback=dict(type='str', default='none', choices=['none', 'reclone']),
        os_user=dict(type='str', default='postgres'),
        connect_timeout=dict(type='int', default=10),
    )


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
        if row['in_recovery']:
            rec = fetch_one(conn, 'SELECT received_tli FROM pg_stat_wal_receiver')
            current = max(row['checkpoint_timeline'], (rec or {}).get('received_tli') or 0)
        else:
            walfile = fetch_one(conn, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')['f']
            current = int(walfile[:8], 16)
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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    started_at = time.monotonic()
    p = module.params
    data_directory = os.path.normpath(p['data_directory'])
    result = dict(changed=False, method='none', fallback_reason=None, duration=0.0, old_timeline=None,
                  source_timeline=None, system_identifier=None, crash_recovery=False, stopped=False,
                  started=False, moved_aside_to=None, bytes_copied=0, commands=[], primary_conninfo=None,
                  passfile=None, changed_settings=[], reload_required=False, reloaded=False, dry_run_output=None)

    # -- validate everything before touching anything ------------------------
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

    # -- already following the source? --------------------------------------
    if following:
        result['old_timeline'] = timeline
        finish_config(module, runner, result, data_directory, wanted, repl, uid, gid, running, reconfigure=True)
        maybe_start(module, runner, result, data_directory, bin_dir)
        result['duration'] = round(time.monotonic() - started_at, 3)
        module.exit_json(**result)

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
    crashed = target['kind'] == 'cluster' and not running and \
        target['cluster_state'] not in CONTROLDATA_STATES_CLEAN
    result['crash_recovery'] = crashed
    result['changed'] = True

    source_conninfo = build_conninfo([('host', p['source_host']), ('port', p['source_port']),
                                      ('user', p['source_user']), ('dbname', p['source_db']),
                                      ('sslmode', p['source_ssl_mode']),
                                      ('sslrootcert', p['source_ssl_root_cert']),
                                      ('application_name', 'pgha.cluster-rewind')])
    passfile_entries = [(p['source_host'], p['source_port'], p['source_user'], p['source_password'], '*')]

    if module.check_mode:
        if reason:
            result.update(method='reclone', fallback_reason=reason)
        else:
            result['method'] = 'rewind'
            why_not = None
            if running:
                why_not = 'the server is running (it would be stopped first)'
            elif crashed:
                why_not = 'the node was not shut down cleanly (crash recovery would run first)'
            elif source['checkpoint_timeline'] < source['timeline'] and not source['in_recovery']:
                why_not = 'the source needs a CHECKPOINT after its promotion first'
            if why_not:
                result['dry_run_output'] = None
                result['msg'] = 'pg_rewind --dry-run skipped: %s' % why_not
            else:
                with TempPassfile(uid, gid, passfile_entries) as pf:
                    rc, out, err = runner.run('pg_rewind', ['-D', data_directory, '--source-server', source_conninfo,
                                                            '--dry-run', '--no-ensure-shutdown'],
                                              environ={'PGPASSFILE': pf.path}, check=False)
                result['dry_run_output'] = (err + out).strip()
                if rc != 0:
                    if p['fallback'] != 'reclone':
                        module.fail_json(msg='pg_rewind --dry-run failed: %s' % (err or out).strip(), **result)
                    result.update(method='reclone', fallback_reason='pg_rewind --dry-run failed: %s'
                                  % (err or out).strip().splitlines()[-1])
        # the node is down after the rewind (stopped first if it ran), so start would start it
        result['started'] = p['start']
        result['stopped'] = running
        result['duration'] = round(time.monotonic() - started_at, 3)
        module.exit_json(**result)

    # -- act ------------------------------------------------------------------
    if running:
        runner.stop(data_directory, mode='fast')
        result['stopped'] = True
        target = inspect_directory(module, bin_dir, data_directory)

    if not reason:
        version = int(data_directory_version(data_directory).split('.')[0])
        if source['checkpoint_timeline'] < source['timeline'] and not source['in_recovery']:
            checkpoint_source(module)
        args = ['-D', data_directory, '--source-server', source_conninfo]
        if p['restore_target_wal']:
            args.append('--restore-target-wal')
        if p['config_file'] and version >= 15:
            # used by pg_rewind for its own crash recovery and for restore_command
            args += ['--config-file', p['config_file']]
        elif crashed and p['config_file']:
            single_user_recovery(module, runner, data_directory, p['config_file'])
        with TempPassfile(uid, gid, passfile_entries) as pf:
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
            target = inspect_directory(module, bin_dir, data_directory)
        else:
            result['method'] = 'rewind'
            finish_config(module, runner, result, data_directory, wanted, repl, uid, gid, False, reconfigure=False)

    if reason:
        result.update(method='reclone', fallback_reason=reason)
        done = clone(module, runner, repl, data_directory, uid, gid,
                     dict(wal_method='stream', checkpoint='fast', max_rate=None, verify_checksums=True),
                     target, False, True, p['settings'])
        result['moved_aside_to'] = done['moved_aside_to']
        result['bytes_copied'] = done['bytes_copied']
        result['changed_settings'] = sorted(wanted)
        if repl['password']:
            ensure_passfile(module, repl['passfile'], repl['host'], repl['port'], repl['user'], repl['password'],
                            uid, gid)

    maybe_start(module, runner, result, data_directory, bin_dir)
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
