#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: replication_info
short_description: Gather replication facts about one PostgreSQL instance
description:
  - Reports the role of one PostgreSQL instance (primary or standby), its system identifier,
    current timeline, WAL positions, replication lag, connected standbys
    (C(pg_stat_replication)), replication slots, WAL receiver status, settings waiting for a
    restart and C(synchronous_standby_names).
  - Read only. It never changes anything and always reports C(changed=false).
author:
  - pgha.cluster contributors (@pgha)
extends_documentation_fragment:
  - pgha.cluster.connection
options: {}
notes:
  - Supports check mode; it behaves the same as a normal run.
  - Minimum PostgreSQL version - 13 (C(pg_stat_wal_receiver.flushed_lsn) and C(written_lsn)). Tested with
    PostgreSQL 15, the only version packaged for Debian 12.
  - A role without superuser should be a member of C(pg_monitor), otherwise PostgreSQL hides
    the addresses and positions of other sessions in C(pg_stat_replication) and
    C(pg_stat_wal_receiver).
seealso:
  - module: pgha.cluster.replication_slot
  - module: pgha.cluster.promote
'''

EXAMPLES = r'''
- name: Read the replication state of every node
  pgha.cluster.replication_info:
    login_host: "{{ ansible_host }}"
    login_user: monitor
    login_password: "{{ monitor_password }}"
  register: repl

- name: Fail when a standby lags more than 16 MB
  ansible.builtin.assert:
    that: repl.role == 'primary' or repl.lag.replay_bytes < 16777216
'''

RETURN = r'''
role:
  description: V(primary) or V(standby) (C(pg_is_in_recovery())).
  returned: always
  type: str
  sample: standby
in_recovery:
  description: Result of C(pg_is_in_recovery()).
  returned: always
  type: bool
  sample: true
server_version:
  description: Server version, C(major.minor).
  returned: always
  type: str
  sample: '15.6'
server_version_num:
  description: C(server_version_num) of the server.
  returned: always
  type: int
  sample: 150006
system_identifier:
  description: Database system identifier from C(pg_control_system()); equal on a primary and its standbys.
  returned: always
  type: str
  sample: '7312345678901234567'
timeline:
  description:
    - Current timeline. On a primary the first 8 hex digits of
      C(pg_walfile_name(pg_current_wal_lsn())); on a standby C(pg_stat_wal_receiver.received_tli),
      or the control file's recovery timeline when no WAL receiver runs.
  returned: always
  type: int
  sample: 2
timeline_source:
  description: Where RV(timeline) was read from.
  returned: always
  type: str
  choices: [pg_walfile_name, pg_stat_wal_receiver, pg_control_recovery, pg_control_checkpoint]
  sample: pg_walfile_name
wal:
  description: WAL positions.
  returned: always
  type: dict
  contains:
    current_lsn:
      description: C(pg_current_wal_lsn()) on a primary, null on a standby.
      type: str
    flush_lsn:
      description: C(pg_current_wal_flush_lsn()) on a primary, null on a standby.
      type: str
    receive_lsn:
      description: C(pg_last_wal_receive_lsn()) on a standby, null on a primary.
      type: str
    replay_lsn:
      description: C(pg_last_wal_replay_lsn()) on a standby, null on a primary.
      type: str
    last_replay_timestamp:
      description: C(pg_last_xact_replay_timestamp()) on a standby (ISO 8601).
      type: str
    replay_paused:
      description: C(pg_is_wal_replay_paused()) on a standby, null on a primary.
      type: bool
  sample:
    current_lsn: 0/3000148
    flush_lsn: 0/3000148
    receive_lsn: null
    replay_lsn: null
    last_replay_timestamp: null
    replay_paused: null
lag:
  description:
    - Replay lag of a standby; null values on a primary (see RV(replication) there).
    - C(replay_seconds) is 0 when everything received is replayed, else the age of the last
      replayed transaction (null when no transaction was replayed since the standby started).
      C(replay_bytes) is received minus replayed WAL.
      C(receive_bytes) is the primary's last reported position minus the received WAL.
  returned: always
  type: dict
  sample:
    replay_seconds: 0.0
    replay_bytes: 0
    receive_bytes: 0
replication:
  description:
    - Rows of C(pg_stat_replication) (standbys and other WAL senders connected to this server),
      lag intervals as seconds, plus C(sent_lag_bytes) and C(replay_lag_bytes) computed
      against this server's current WAL position.
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 4711
      application_name: pg2
      client_addr: 10.0.0.12
      state: streaming
      sent_lsn: 0/3000148
      replay_lsn: 0/3000148
      replay_lag: 0.000512
      replay_lag_bytes: 0
      sync_state: async
replication_slots:
  description: Rows of C(pg_replication_slots), every column of the server's version.
  returned: always
  type: list
  elements: dict
  sample:
    - slot_name: pg2
      slot_type: physical
      active: true
      restart_lsn: 0/3000148
wal_receiver:
  description:
    - The C(pg_stat_wal_receiver) row of a standby (C(sender_host), C(sender_port), C(status),
      C(slot_name), C(received_tli), positions...), with any password in C(conninfo) masked.
    - Empty on a primary or when no WAL receiver runs.
  returned: always
  type: dict
  sample:
    status: streaming
    sender_host: 10.0.0.11
    sender_port: 5432
    slot_name: pg2
    received_tli: 1
pending_restart:
  description: Settings changed in the configuration that need a restart (C(pg_settings.pending_restart)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: max_connections
      setting: '100'
synchronous_standby_names:
  description: Current value of C(synchronous_standby_names).
  returned: always
  type: str
  sample: 'ANY 1 (pg2, pg3)'
settings:
  description: Replication related settings (wal_level, max_wal_senders, max_replication_slots, hot_standby...).
  returned: always
  type: dict
  sample:
    wal_level: replica
    max_wal_senders: '10'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    connect,
    connection_argument_spec,
    fetch_all,
    fetch_one,
    server_version_num,
    version_string,
)
from ansible_collections.pgha.cluster.plugins.module_utils.replication import (
    current_timeline,
    jsonable_row,
    mask_conninfo_password,
)

SETTINGS = ('wal_level', 'max_wal_senders', 'max_replication_slots', 'hot_standby', 'wal_log_hints',
            'synchronous_commit', 'primary_conninfo', 'primary_slot_name', 'recovery_target_timeline',
            'wal_keep_size', 'max_slot_wal_keep_size', 'archive_mode')


def gather(conn):
    facts = {}
    version_num = server_version_num(conn)
    in_recovery = fetch_one(conn, 'SELECT pg_catalog.pg_is_in_recovery() AS r')['r']
    facts['in_recovery'] = in_recovery
    facts['role'] = 'standby' if in_recovery else 'primary'
    facts['server_version_num'] = version_num
    facts['server_version'] = version_string(version_num)
    facts['system_identifier'] = str(fetch_one(
        conn, 'SELECT system_identifier FROM pg_catalog.pg_control_system()')['system_identifier'])
    facts['timeline'], facts['timeline_source'] = current_timeline(conn, in_recovery)

    if in_recovery:
        wal = jsonable_row(fetch_one(conn, '''
            SELECT NULL::text AS current_lsn, NULL::text AS flush_lsn,
                   pg_catalog.pg_last_wal_receive_lsn()::text AS receive_lsn,
                   pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn,
                   pg_catalog.pg_last_xact_replay_timestamp() AS last_replay_timestamp,
                   pg_catalog.pg_is_wal_replay_paused() AS replay_paused'''))
        lag = jsonable_row(fetch_one(conn, '''
            SELECT CASE WHEN pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM
                             pg_catalog.pg_last_wal_replay_lsn() THEN 0::float8
                        ELSE extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8
                   END AS replay_seconds,
                   pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(),
                                              pg_catalog.pg_last_wal_replay_lsn())::bigint AS replay_bytes,
                   (SELECT pg_catalog.pg_wal_lsn_diff(latest_end_lsn, flushed_lsn)::bigint
                      FROM pg_catalog.pg_stat_wal_receiver) AS receive_bytes'''))
    else:
        wal = jsonable_row(fetch_one(conn, '''
            SELECT pg_catalog.pg_current_wal_lsn()::text AS current_lsn,
                   pg_catalog.pg_current_wal_flush_lsn()::text AS flush_lsn,
                   NULL::text AS receive_lsn, NULL::text AS replay_lsn,
                   NULL::timestamptz AS last_replay_timestamp, NULL::bool AS replay_paused'''))
        lag = {'replay_seconds': None, 'replay_bytes': None, 'receive_bytes': None}
    facts['wal'] = wal
    facts['lag'] = lag

    position = 'pg_catalog.pg_last_wal_receive_lsn()' if in_recovery else 'pg_catalog.pg_current_wal_lsn()'
    facts['replication'] = [jsonable_row(r) for r in fetch_all(conn, '''
        SELECT r.*,
               pg_catalog.pg_wal_lsn_diff(%s, r.sent_lsn)::bigint AS sent_lag_bytes,
               pg_catalog.pg_wal_lsn_diff(%s, r.replay_lsn)::bigint AS replay_lag_bytes
          FROM pg_catalog.pg_stat_replication r ORDER BY r.application_name, r.pid''' % (position, position))]
    facts['replication_slots'] = [jsonable_row(r) for r in fetch_all(
        conn, 'SELECT * FROM pg_catalog.pg_replication_slots ORDER BY slot_name')]

    receiver = jsonable_row(fetch_one(conn, 'SELECT * FROM pg_catalog.pg_stat_wal_receiver')) or {}
    if receiver.get('conninfo'):
        receiver['conninfo'] = mask_conninfo_password(receiver['conninfo'])
    facts['wal_receiver'] = receiver

    facts['pending_restart'] = [jsonable_row(r) for r in fetch_all(
        conn, 'SELECT name, setting, unit FROM pg_catalog.pg_settings WHERE pending_restart ORDER BY name')]
    facts['synchronous_standby_names'] = fetch_one(
        conn, "SELECT pg_catalog.current_setting('synchronous_standby_names') AS s")['s']
    settings = {}
    for row in fetch_all(conn, 'SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY(%s)',
                         (list(SETTINGS),)):
        settings[row['name']] = row['setting']
    if settings.get('primary_conninfo'):
        settings['primary_conninfo'] = mask_conninfo_password(settings['primary_conninfo'])
    facts['settings'] = settings
    return facts


def main():
    module = AnsibleModule(argument_spec=connection_argument_spec(), supports_check_mode=True)
    conn = connect(module)
    try:
        facts = gather(conn)
    except Exception as exc:
        module.fail_json(msg='Could not read replication information: %s. The role needs superuser '
                             'or membership in pg_monitor.' % str(exc).strip())
    finally:
        conn.close()
    module.exit_json(changed=False, **facts)


if __name__ == '__main__':
    main()
