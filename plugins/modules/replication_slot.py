#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: replication_slot
short_description: Create or drop PostgreSQL physical and logical replication slots
description:
  - Creates or drops a physical or logical replication slot on a PostgreSQL server.
  - An existing slot is never altered. When a slot of the same name exists with a
    different type, output plugin, database or option, the module fails and says what differs.
  - The slot name is validated before any connection is opened.
  - Logical slots are created in the database of O(login_db) and need C(wal_level=logical).
author:
  - pgha.cluster contributors (@pgha)
extends_documentation_fragment:
  - pgha.cluster.connection
options:
  name:
    description:
      - Name of the slot. Lower case letters, digits and underscores only, at most 63 characters.
    type: str
    required: true
    aliases: [slot_name]
  state:
    description:
      - V(present) creates the slot when it does not exist.
      - V(absent) drops it when it exists.
    type: str
    choices: [present, absent]
    default: present
  slot_type:
    description:
      - Kind of slot. Compared with an existing slot when O(state=present).
    type: str
    choices: [physical, logical]
    default: physical
  output_plugin:
    description:
      - Logical decoding output plugin of a logical slot.
      - When omitted, a new logical slot uses C(pgoutput), the plugin of built-in logical replication, and an
        existing slot is not compared on its plugin.
      - Only valid with O(slot_type=logical); setting it for a physical slot is an error.
    type: str
  immediately_reserve:
    description:
      - For a new physical slot, reserve WAL at once (the slot gets a C(restart_lsn) immediately)
        instead of on the first connection of a consumer.
      - Only valid with O(slot_type=physical). Not compared with an existing slot.
    type: bool
    default: false
  two_phase:
    description:
      - Enable decoding of prepared transactions on a new logical slot (PostgreSQL 14 or later).
      - When omitted, a new slot is created without it and an existing slot is not compared.
      - Only valid with O(slot_type=logical).
    type: bool
  failover:
    description:
      - Mark a new logical slot for synchronisation to standbys (PostgreSQL 17 or later).
      - When omitted, a new slot is created without it and an existing slot is not compared.
      - Only valid with O(slot_type=logical).
    type: bool
  terminate_active:
    description:
      - When dropping a slot that a walsender or a decoding session is using, terminate that
        backend (C(pg_terminate_backend(active_pid))) and then drop the slot.
      - When V(false), dropping an active slot fails and nothing is changed.
    type: bool
    default: false
notes:
  - Supports check mode and diff mode. In check mode the module connects and reads
    C(pg_replication_slots) but runs nothing that changes the server; RV(queries) then lists the
    statements it would run.
  - Creating or dropping slots needs the C(REPLICATION) attribute or superuser;
    O(terminate_active) needs the right to signal the backend (superuser or C(pg_signal_backend)).
  - Minimum PostgreSQL version - 10 (logical slots with O(two_phase) 14, O(failover) 17, as checked by the
    module). Tested with PostgreSQL 15, the only version packaged for Debian 12.
seealso:
  - name: Replication slots
    description: PostgreSQL documentation on replication slots.
    link: https://www.postgresql.org/docs/current/warm-standby.html#STREAMING-REPLICATION-SLOTS
  - module: pgha.cluster.replication_info
'''

EXAMPLES = r'''
- name: Physical slot for standby pg2, reserving WAL at once
  pgha.cluster.replication_slot:
    name: pg2
    immediately_reserve: true
    login_host: 10.0.0.11
    login_password: "{{ postgres_password }}"

- name: Logical slot with pgoutput in database app
  pgha.cluster.replication_slot:
    name: app_cdc
    slot_type: logical
    login_db: app

- name: Logical slot with two-phase decoding and the test_decoding plugin
  pgha.cluster.replication_slot:
    name: audit
    slot_type: logical
    output_plugin: test_decoding
    two_phase: true

- name: Drop a slot even if a standby is streaming from it
  pgha.cluster.replication_slot:
    name: pg2
    state: absent
    terminate_active: true
'''

RETURN = r'''
slot:
  description:
    - The slot as C(pg_replication_slots) reports it after the run (all columns of the
      server's version), or an empty dict when it does not exist.
    - In check mode, the slot as it is before the run (empty when it would be created).
  returned: always
  type: dict
  sample:
    slot_name: pg2
    plugin: null
    slot_type: physical
    datoid: null
    database: null
    temporary: false
    active: true
    active_pid: 4711
    xmin: null
    catalog_xmin: null
    restart_lsn: 0/3000148
    confirmed_flush_lsn: null
    wal_status: reserved
    safe_wal_size: null
    two_phase: false
queries:
  description: SQL statements run, or that would run in check mode.
  returned: always
  type: list
  elements: str
  sample:
    - "SELECT * FROM pg_catalog.pg_create_physical_replication_slot('pg2', true)"
terminated_pid:
  description: Process id of the backend terminated to drop an active slot.
  returned: when O(terminate_active=true) terminated a backend
  type: int
  sample: 4711
server_version:
  description: Version of the server, for example C(15.6).
  returned: when connected
  type: str
  sample: '15.6'
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    connect,
    connection_argument_spec,
    ensure_psycopg,
    fetch_one,
    psycopg_sql,
    server_version_num,
    version_string,
)
from ansible_collections.pgha.cluster.plugins.module_utils.replication import (
    SLOT_FEATURE_MIN_VERSION,
    get_slot,
    validate_slot_name,
)

DEFAULT_OUTPUT_PLUGIN = 'pgoutput'


def validate_params(module):
    """Checks that need no server: fail before connecting."""
    params = module.params
    error = validate_slot_name(params['name'])
    if error:
        module.fail_json(msg='Invalid slot name: %s. Fix the name option.' % error)
    if params['state'] == 'absent':
        return
    if params['slot_type'] == 'physical':
        for option in ('output_plugin', 'two_phase', 'failover'):
            if params[option] not in (None, False):
                module.fail_json(msg='%s applies only to logical slots; remove it or set '
                                     'slot_type=logical.' % option)
    else:
        if params['immediately_reserve']:
            module.fail_json(msg='immediately_reserve applies only to physical slots (a logical slot '
                                 'always reserves WAL); remove it or set slot_type=physical.')
        if params['output_plugin'] is not None and not params['output_plugin'].strip():
            module.fail_json(msg='output_plugin must not be empty; omit it to use %s.'
                             % DEFAULT_OUTPUT_PLUGIN)


def validate_against_server(module, conn, version_num):
    """Checks that need the server version or settings, still before any change."""
    params = module.params
    if params['state'] == 'absent' or params['slot_type'] != 'logical':
        return
    for option, minimum in sorted(SLOT_FEATURE_MIN_VERSION.items()):
        if params[option] and version_num < minimum:
            module.fail_json(msg='%s=true needs PostgreSQL %s or later; the server runs %s. '
                                 'Remove the %s option.'
                                 % (option, minimum // 10000, version_string(version_num), option))
    wal_level = fetch_one(conn, 'SHOW wal_level')['wal_level']
    if wal_level != 'logical':
        module.fail_json(msg="Logical slots need wal_level=logical; the server has wal_level=%s. "
                             "Set wal_level = logical and restart PostgreSQL, or use slot_type=physical."
                             % wal_level)


def differences(module, slot, database):
    """What differs between an existing slot and the requested one."""
    params = module.params
    diffs = []
    if slot['slot_type'] != params['slot_type']:
        diffs.append('slot_type is %s, requested %s' % (slot['slot_type'], params['slot_type']))
        return diffs
    if params['slot_type'] == 'logical':
        # Omitted means "create with pgoutput", not "must be pgoutput": like two_phase, compared only when set.
        plugin = params['output_plugin']
        if plugin is not None and slot.get('plugin') != plugin:
            diffs.append('output_plugin is %s, requested %s' % (slot.get('plugin'), plugin))
        if slot.get('database') != database:
            diffs.append('database is %s, requested %s (login_db)' % (slot.get('database'), database))
        for option in ('two_phase', 'failover'):
            if params[option] is not None and option in slot and bool(slot[option]) != params[option]:
                diffs.append('%s is %s, requested %s' % (option, slot[option], params[option]))
    return diffs


def create_query(module, conn, version_num):
    params = module.params
    literal = psycopg_sql.Literal
    if params['slot_type'] == 'physical':
        query = psycopg_sql.SQL('SELECT * FROM pg_catalog.pg_create_physical_replication_slot({}, {})').format(
            literal(params['name']), literal(bool(params['immediately_reserve'])))
    else:
        args = [literal(params['name']), literal(params['output_plugin'] or DEFAULT_OUTPUT_PLUGIN)]
        if params['two_phase'] or params['failover']:
            args.append(literal(False))  # temporary
            args.append(literal(bool(params['two_phase'])))
        if params['failover']:
            args.append(literal(True))
        query = psycopg_sql.SQL('SELECT * FROM pg_catalog.pg_create_logical_replication_slot({})').format(
            psycopg_sql.SQL(', ').join(args))
    return query.as_string(conn)


def predicted_slot(module, database):
    params = module.params
    slot = {'slot_name': params['name'], 'slot_type': params['slot_type']}
    if params['slot_type'] == 'logical':
        slot['plugin'] = params['output_plugin'] or DEFAULT_OUTPUT_PLUGIN
        slot['database'] = database
        slot['two_phase'] = bool(params['two_phase'])
        if params['failover']:
            slot['failover'] = True
    else:
        slot['plugin'] = None
        slot['database'] = None
    return slot


def run(module, conn, query, queries):
    queries.append(query)
    with conn.cursor() as cur:
        cur.execute(query)


def drop_slot(module, conn, slot, result):
    params = module.params
    literal = psycopg_sql.Literal
    drop = psycopg_sql.SQL('SELECT pg_catalog.pg_drop_replication_slot({})').format(
        literal(params['name'])).as_string(conn)
    queries = result['queries']
    if slot['active'] and not params['terminate_active']:
        module.fail_json(msg='Replication slot %s is active (used by process %s); it cannot be dropped. '
                             'Stop its consumer, or set terminate_active=true to terminate that backend '
                             'and drop the slot.' % (params['name'], slot.get('active_pid')),
                         slot=slot, queries=queries)
    if module.check_mode:
        if slot['active']:
            queries.append('SELECT pg_catalog.pg_terminate_backend(%s)' % slot.get('active_pid'))
        queries.append(drop)
        return
    # A streaming standby reconnects at once when its walsender is terminated
    # and may re-acquire the slot before the drop: terminate whoever holds the
    # slot and drop as soon as it is free, again and again until a deadline.
    deadline = time.monotonic() + max(10, params['connect_timeout'] * 2)
    last_error = None
    while time.monotonic() < deadline:
        current = get_slot(conn, params['name'])
        if current is None:
            return
        if current['active'] and not params['terminate_active']:
            module.fail_json(msg='Replication slot %s became active (process %s) before it could be '
                                 'dropped. Retry, or set terminate_active=true.'
                                 % (params['name'], current.get('active_pid')), queries=queries)
        if current['active'] and current.get('active_pid'):
            pid = current['active_pid']
            run(module, conn, 'SELECT pg_catalog.pg_terminate_backend(%d)' % int(pid), queries)
            result.setdefault('terminated_pid', pid)
            while time.monotonic() < deadline:
                current = get_slot(conn, params['name'])
                if current is None or not current['active'] or current.get('active_pid') != pid:
                    break
                time.sleep(0.01)
            if current is not None and current['active']:
                continue  # another consumer took the slot: terminate it too
        try:
            run(module, conn, drop, queries)
            return
        except Exception as exc:
            last_error = str(exc).strip()
            if 'is active' not in last_error:
                module.fail_json(msg='Could not drop replication slot %s: %s'
                                     % (params['name'], last_error), queries=queries)
    module.fail_json(msg='Could not drop replication slot %s: a consumer kept re-acquiring it (%s). Stop '
                         'the consumer (for a standby, clear its primary_slot_name) and retry.'
                         % (params['name'], last_error or 'still active'), queries=queries)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True, aliases=['slot_name']),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        slot_type=dict(type='str', default='physical', choices=['physical', 'logical']),
        output_plugin=dict(type='str'),
        immediately_reserve=dict(type='bool', default=False),
        two_phase=dict(type='bool'),
        failover=dict(type='bool'),
        terminate_active=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    validate_params(module)
    ensure_psycopg(module)

    params = module.params
    conn = connect(module)
    result = dict(changed=False, queries=[], slot={})
    try:
        version_num = server_version_num(conn)
        result['server_version'] = version_string(version_num)
        validate_against_server(module, conn, version_num)
        database = conn.info.dbname
        before = get_slot(conn, params['name'])
        after = before

        if params['state'] == 'present':
            if before is not None:
                diffs = differences(module, before, database)
                if diffs:
                    module.fail_json(msg='Replication slot %s exists with different settings: %s. '
                                         'Drop it first (state=absent) or change the requested options.'
                                     % (params['name'], '; '.join(diffs)), slot=before, queries=[])
            else:
                query = create_query(module, conn, version_num)
                result['changed'] = True
                if module.check_mode:
                    result['queries'].append(query)
                    after = predicted_slot(module, database)
                else:
                    try:
                        run(module, conn, query, result['queries'])
                    except Exception as exc:
                        module.fail_json(msg='Could not create replication slot %s: %s'
                                             % (params['name'], str(exc).strip()), queries=result['queries'])
                    after = get_slot(conn, params['name'])
        elif before is not None:
            result['changed'] = True
            drop_slot(module, conn, before, result)
            after = None if module.check_mode else get_slot(conn, params['name'])

        result['slot'] = (before if module.check_mode else after) or {}
        if module._diff:
            result['diff'] = dict(before=before or {},
                                  after=after or {})
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
