#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: promote
short_description: Promote a PostgreSQL standby to primary
description:
  - Promotes a hot standby with C(pg_promote(wait, wait_seconds)) over a connection.
  - When nothing answers at the connection address (server listening elsewhere, not yet accepting
    connections, or TCP closed) and O(data_directory) is set, promotes with
    C(pg_ctl promote -D data_directory) instead. An authentication or C(pg_hba.conf) rejection
    is an error, never a reason to fall back to C(pg_ctl).
  - Idempotent. A server that already is a primary is left alone (C(changed=false)).
  - With O(expected_primary_absent), first asks each listed node whether it is a primary and
    refuses to promote when one is, to avoid a split brain.
author:
  - pgha.cluster contributors (@pgha)
extends_documentation_fragment:
  - pgha.cluster.connection
options:
  data_directory:
    description:
      - Data directory of the standby on the managed host.
      - Needed only for the C(pg_ctl promote) fallback when the server cannot be reached with the
        connection options. When set, it must be a PostgreSQL data directory.
      - When the module runs as root, C(pg_ctl) runs as the owner of the directory.
      - When set and the server answers over SQL, the module first checks that the server reached is the one
        running on this directory (its C(postmaster.pid), read with C(pg_read_binary_file)), and refuses,
        promoting nothing, when it is another server (for example O(login_port) of another standby).
    type: path
  bin_dir:
    description:
      - Directory of the PostgreSQL server binaries (C(pg_ctl), C(pg_controldata)).
      - Default is found from the data directory's C(PG_VERSION), C(/usr/lib/postgresql/*/bin)
        or C(PATH).
    type: path
  wait:
    description:
      - Wait until the promotion has completed before returning.
      - With V(false), RV(new_timeline) and RV(promote_lsn) are not reported.
    type: bool
    default: true
  wait_seconds:
    description:
      - How long to wait for the promotion when O(wait=true). The module fails when it takes longer.
    type: int
    default: 60
  expected_primary_absent:
    description:
      - Other nodes of the cluster that must not be primaries when this one is promoted.
      - Each entry is C(host:port), C([ipv6]:port), C(host) (port 5432) or a libpq conninfo string
        (C(host=10.0.0.11 port=5432 user=monitor)). Options missing from an entry are taken from
        the login options of this module (user, password, database, SSL settings, timeout).
      - An entry must not contain a password - it is refused, and masked in the module's invocation log on the
        target and in its result; every entry uses O(login_password) or a C(.pgpass) file.
      - The module refuses, changing nothing, when a node answers C(pg_is_in_recovery() = false),
        or when a server answers but refuses the session (its role is then unknown).
      - A node whose host answers that nothing listens (connection refused, no socket file) is absent.
        A node that does not answer at all (timeout, no route, unknown name) is V(unreachable) - that is what
        a primary cut off by a network partition looks like, so O(unreachable_peers) decides.
    type: list
    elements: str
    default: []
  unreachable_peers:
    description:
      - What an unreachable O(expected_primary_absent) node means.
      - V(refuse) refuses to promote, changing nothing - the safe choice when a partition is possible and
        nothing fenced the old primary.
      - V(absent) counts it as absent and promotes - choose it when the node is known to be down or fenced
        (for example after a host crash or after fencing it).
      - Earlier versions counted an unreachable node as absent; it is now refused unless V(absent) is chosen.
    type: str
    choices: [refuse, absent]
    default: refuse
notes:
  - Supports check mode. A standby is reported as C(changed=true) and nothing is run on it;
    the O(expected_primary_absent) checks run in check mode too.
  - C(pg_promote()) needs superuser or an explicit C(GRANT EXECUTE); the fallback needs to run on
    the standby's host with access to the data directory.
  - Minimum PostgreSQL version - 12 (C(pg_promote())). Tested with PostgreSQL 15, the only version packaged
    for Debian 12.
seealso:
  - module: pgha.cluster.replication_info
  - name: pg_promote
    description: PostgreSQL recovery control functions.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
'''

EXAMPLES = r'''
- name: Promote pg2, but only if the old primary pg1 is really gone
  pgha.cluster.promote:
    login_host: 10.0.0.12
    login_password: "{{ postgres_password }}"
    expected_primary_absent:
      - 10.0.0.11:5432
  register: promotion

- name: Promote through pg_ctl when SQL connections are not possible
  pgha.cluster.promote:
    login_unix_socket: /var/run/postgresql
    data_directory: /var/lib/postgresql/15/main
    bin_dir: /usr/lib/postgresql/15/bin
    wait_seconds: 120
'''

RETURN = r'''
method:
  description:
    - How the server was reached (and promoted when it was a standby). V(sql) through the
      connection options, V(pg_ctl) through O(data_directory).
  returned: always
  type: str
  choices: [sql, pg_ctl]
  sample: sql
role_before:
  description: Role of the server before the run.
  returned: always
  type: str
  choices: [primary, standby]
  sample: standby
old_timeline:
  description: Timeline before the promotion (the current timeline when nothing was done).
  returned: always
  type: int
  sample: 1
new_timeline:
  description: Timeline after the promotion; equal to RV(old_timeline) when nothing was done; null in check mode or with O(wait=false).
  returned: always
  type: int
  sample: 2
promote_lsn:
  description:
    - LSN where the new timeline starts, read from the new timeline's history file; when that
      file cannot be read, the last replayed LSN before the promotion.
    - Null when nothing was promoted, in check mode, or with O(wait=false).
  returned: always
  type: str
  sample: 0/5000060
duration:
  description: Seconds spent promoting (0 when nothing was done).
  returned: always
  type: float
  sample: 0.412
peers:
  description: Result of the O(expected_primary_absent) checks.
  returned: when O(expected_primary_absent) is set and the server was a standby
  type: list
  elements: dict
  contains:
    target:
      description: The entry, with any password masked.
      type: str
    status:
      description: V(absent), V(unreachable), V(standby), V(primary) or V(unknown).
      type: str
    detail:
      description: What the node answered, or the connection error.
      type: str
  sample:
    - target: 10.0.0.11:5432
      status: absent
      detail: 'connection refused'
connection_error:
  description: Why the connection failed when the module fell back to C(pg_ctl).
  returned: when RV(method=pg_ctl)
  type: str
'''

import os
import time


from ansible_collections.pgha.cluster.plugins.module_utils import postgres
from ansible_collections.pgha.cluster.plugins.module_utils.instance import same_instance
from ansible_collections.pgha.cluster.plugins.module_utils.pg_server import (
    controldata,
    data_directory_owner,
    data_directory_version,
    find_bin_dir,
    is_data_directory,
    run_binary,
    server_status,
)
from ansible_collections.pgha.cluster.plugins.module_utils.replication import (
    classify_connection_error,
    current_timeline,
    history_file_name,
    latest_history_timeline,
    mask_conninfo_password,
    parse_history_file,
    parse_peer,
    probe_role,
)


def validate_params(module):
    """Everything that can be checked without touching a server. Returns the peers."""
    params = module.params
    if params['wait_seconds'] < 1:
        module.fail_json(msg='wait_seconds must be at least 1 (got %d).' % params['wait_seconds'])
    if params['data_directory'] and not is_data_directory(params['data_directory']):
        module.fail_json(msg="data_directory '%s' is not a PostgreSQL data directory (no PG_VERSION or "
                             "global/pg_control, or no permission to read it). Fix data_directory or "
                             "omit it." % params['data_directory'])
    base = postgres.connection_kwargs(params)
    base.pop('host', None)
    base.pop('port', None)
    peers = []
    for entry in params['expected_primary_absent']:
        parsed, error = parse_peer(entry)
        target = mask_conninfo_password(str(entry))
        if error:
            module.fail_json(msg='expected_primary_absent entry %r is invalid: %s. Use host:port or a '
                                 'libpq conninfo string.' % (target, error))
        kwargs = dict(base)
        if 'conninfo' in parsed:
            try:
                conninfo = postgres.parse_conninfo(parsed['conninfo'])
            except Exception as exc:
                module.fail_json(msg='expected_primary_absent entry %r is not a valid conninfo string: %s'
                                     % (target, mask_conninfo_password(str(exc).strip())))
            if 'password' in conninfo:
                # ConninfoModule kept it out of the invocation log and of the results
                module.fail_json(msg='expected_primary_absent entry %r must not contain a password: every entry '
                                     'uses login_password (no_log), or a .pgpass file.' % target)
            kwargs.update(conninfo)
        else:
            kwargs.update(parsed)
        peers.append((target, kwargs))
    return peers


def check_peers(module, peers, result):
    """Refuse when another node is (or may be) a primary."""
    if not peers:
        return
    checks = []
    for target, kwargs in peers:
        status, detail = probe_role(postgres.psycopg, kwargs)
        checks.append(dict(target=target, status=status, detail=mask_conninfo_password(detail)))
    result['peers'] = checks
    primaries = [c['target'] for c in checks if c['status'] == 'primary']
    unknown = [c for c in checks if c['status'] == 'unknown']
    unreachable = [c for c in checks if c['status'] == 'unreachable']
    if primaries:
        module.fail_json(msg='Refusing to promote: %s answered pg_is_in_recovery() = false (a primary is '
                             'running). Stop or fence it first, or remove it from expected_primary_absent.'
                             % ', '.join(primaries), **result)
    if unknown:
        module.fail_json(msg='Refusing to promote: the role of %s could not be read (%s). Fix the '
                             'credentials or pg_hba.conf for that node, or remove it from '
                             'expected_primary_absent.'
                             % (unknown[0]['target'], unknown[0]['detail']), **result)
    if unreachable and module.params['unreachable_peers'] == 'refuse':
        module.fail_json(msg='Refusing to promote: nothing answered from %s (%s); a primary cut off by a network '
                             'partition looks the same. Make sure it is down or fenced, then set '
                             'unreachable_peers: absent, or fix its address in expected_primary_absent.'
                             % (unreachable[0]['target'], unreachable[0]['detail']), **result)


def refuse_other_server(module, conn):
    """Fail when data_directory is set and the login options reach another server."""
    data_directory = module.params['data_directory']
    if not data_directory:
        return
    same, detail = same_instance(conn, data_directory)
    if same:
        return
    if same is None:
        module.fail_json(msg='Refusing to promote: cannot tell whether the server reached with the login_* '
                             'options is the one running on data_directory %s (%s). Log in as a superuser, grant '
                             'EXECUTE on pg_read_binary_file(text, bigint, bigint, boolean) to login_user, or '
                             'omit data_directory.' % (data_directory, detail))
    module.fail_json(msg='Refusing to promote: the login_* options reach another server than the one of '
                         'data_directory (%s). Fix login_host/login_port/login_unix_socket or data_directory.'
                         % detail)


def read_history(data_directory, timeline):
    path = os.path.join(data_directory, 'pg_wal', history_file_name(timeline))
    try:
        with open(path) as handle:
            return parse_history_file(handle.read())
    except (IOError, OSError):
        return []


def promote_sql(module, conn, peers, result):
    params = module.params
    old_tli, dummy = current_timeline(conn, True)
    result['old_timeline'] = old_tli
    check_peers(module, peers, result)
    if module.check_mode:
        result['changed'] = True
        return
    replay_lsn = postgres.fetch_one(conn, 'SELECT pg_catalog.pg_last_wal_replay_lsn()::text AS lsn')['lsn']
    started = time.monotonic()
    try:
        done = postgres.fetch_one(conn, 'SELECT pg_catalog.pg_promote(%s, %s) AS done',
                                  (params['wait'], params['wait_seconds']))['done']
    except Exception as exc:
        module.fail_json(msg='pg_promote() failed: %s. The login role needs superuser or EXECUTE on '
                             'pg_promote.' % str(exc).strip(), **result)
    result['duration'] = round(time.monotonic() - started, 3)
    result['changed'] = True
    if not params['wait']:
        return
    if not done:
        module.fail_json(msg='The promotion did not complete within wait_seconds=%d; check the server log '
                             'and raise wait_seconds.' % params['wait_seconds'], **result)
    new_tli, dummy = current_timeline(conn, False)
    result['new_timeline'] = new_tli
    entries = []
    try:
        text = postgres.fetch_one(conn, 'SELECT pg_catalog.pg_read_file(%s) AS t',
                                  ('pg_wal/' + history_file_name(new_tli),))['t']
        entries = parse_history_file(text)
    except Exception:
        if params['data_directory']:
            entries = read_history(params['data_directory'], new_tli)
    if entries:
        # The history file names the timeline we left; the control file read
        # before promoting can be older when no restartpoint followed the
        # last timeline switch.
        result['old_timeline'] = entries[-1]['parent_timeline']
    result['promote_lsn'] = entries[-1]['switchpoint'] if entries else replay_lsn


def promote_pg_ctl(module, peers, result):
    params = module.params
    data_directory = params['data_directory']
    bin_dir = find_bin_dir(module, params['bin_dir'], data_directory_version(data_directory))
    status = server_status(module, bin_dir, data_directory)
    if status != 'running':
        module.fail_json(msg='The server of data_directory %s is not running (pg_ctl status: %s) and '
                             'could not be reached over SQL. Start it first; pg_ctl promote needs a running '
                             'standby.' % (data_directory, status), **result)
    control = controldata(module, bin_dir, data_directory)
    state = control['cluster_state']
    timelines = [t for t in (control['timeline'], control['min_recovery_timeline'],
                             latest_history_timeline(os.path.join(data_directory, 'pg_wal'))) if t]
    current = max(timelines) if timelines else None
    if state == 'in production':
        result.update(role_before='primary', old_timeline=current, new_timeline=current)
        return
    if state != 'in archive recovery':
        module.fail_json(msg='The server of data_directory %s is in state %r; only a standby in archive '
                             'recovery can be promoted. Wait until it has started and retry.'
                             % (data_directory, state), **result)
    result['old_timeline'] = current
    check_peers(module, peers, result)
    if module.check_mode:
        result['changed'] = True
        return
    args = ['promote', '-D', data_directory]
    args += ['-w', '-t', str(params['wait_seconds'])] if params['wait'] else ['-W']
    run_as = data_directory_owner(data_directory) if os.geteuid() == 0 else None
    started = time.monotonic()
    run_binary(module, bin_dir, 'pg_ctl', args, run_as=run_as, environ_update={'LC_ALL': 'C'})
    result['duration'] = round(time.monotonic() - started, 3)
    result['changed'] = True
    if not params['wait']:
        return
    new_tli = latest_history_timeline(os.path.join(data_directory, 'pg_wal'))
    result['new_timeline'] = new_tli
    entries = read_history(data_directory, new_tli) if new_tli else []
    if entries:
        result['promote_lsn'] = entries[-1]['switchpoint']
        result['old_timeline'] = entries[-1]['parent_timeline']


def main():
    argument_spec = postgres.connection_argument_spec()
    argument_spec.update(
        data_directory=dict(type='path'),
        bin_dir=dict(type='path'),
        wait=dict(type='bool', default=True),
        wait_seconds=dict(type='int', default=60),
        expected_primary_absent=dict(type='list', elements='str', default=[]),
        unreachable_peers=dict(type='str', choices=['refuse', 'absent'], default='refuse'),
    )
    module = postgres.ConninfoModule(['expected_primary_absent'], argument_spec=argument_spec,
                                     supports_check_mode=True)
    postgres.ensure_psycopg(module)
    peers = validate_params(module)

    result = dict(changed=False, method='sql', role_before=None, old_timeline=None, new_timeline=None,
                  promote_lsn=None, duration=0.0)
    conn, error = postgres.connect(module, fail=False)
    if conn is not None:
        try:
            refuse_other_server(module, conn)
            in_recovery = postgres.fetch_one(conn, 'SELECT pg_catalog.pg_is_in_recovery() AS r')['r']
            if not in_recovery:
                tli, dummy = current_timeline(conn, False)
                result.update(role_before='primary', old_timeline=tli, new_timeline=tli)
            else:
                result['role_before'] = 'standby'
                promote_sql(module, conn, peers, result)
        finally:
            conn.close()
        module.exit_json(**result)

    kind = classify_connection_error(error)
    if kind == 'rejected':
        module.fail_json(msg=error + ' The server answered but refused the session, so the module does not '
                                     'fall back to pg_ctl; fix the login_* options.')
    if not module.params['data_directory']:
        module.fail_json(msg=error + ' Set data_directory (and bin_dir if needed) to promote with '
                                     'pg_ctl when the server cannot be reached over SQL.')
    result.update(method='pg_ctl', connection_error=error, role_before='standby')
    promote_pg_ctl(module, peers, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
