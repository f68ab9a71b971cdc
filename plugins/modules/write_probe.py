#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: write_probe
short_description: Measure a PostgreSQL failover from a client (RTO, RPO, split brain, stale reads)
version_added: 0.1.0
description:
  - Runs on a client host for a bounded time, inserting one row per transaction through a write
    endpoint every O(interval_ms), and records every acknowledged id with a monotonic timestamp.
  - Reports the longest gap between acknowledged writes (RTO), the time from the fault to the first
    write after the outage it caused, and, by reading the ids back from the node that is primary at
    the end, the acknowledged writes that were lost (RPO) and the unacknowledged ones that landed.
  - Optionally polls every node directly to catch split brain, and counts stale reads through a
    read endpoint.
  - Every connection attempt and every statement has a client-side deadline, so a frozen server or a
    silent network partition cannot hold the probe; it starts no attempt after O(duration). An attempt
    started before the end still gets its whole O(connect_timeout) or O(write_timeout).
  - Meant to run with C(async) and C(poll=0) while the playbook injects a fault; see the examples.
  - In check mode the probe only checks that O(dsn) reaches a primary, writes nothing and returns
    RV(skipped=true) with C(changed=false).
  - The measuring core is also usable without Ansible, see C(plugins/module_utils/probe.py).
author:
  - pgha.cluster contributors (@pgha)
options:
  dsn:
    description:
      - libpq connection string (key=value or C(postgresql://) URI) of the endpoint to write through,
        for example a solution's virtual IP or proxy, or a multi-host DSN with
        C(target_session_attrs=read-write).
      - Must not contain a password; use O(password) or a C(.pgpass) file. A password in O(dsn),
        O(read_dsn), O(verify_dsns) or O(split_brain_dsns) is refused, and masked in the module's invocation
        log on the target and in its result.
      - C(connect_timeout) in the string is ignored in favour of O(connect_timeout).
    type: str
    required: true
  password:
    description:
      - Password used for every connection the probe opens (O(dsn), O(verify_dsns),
        O(split_brain_dsns), O(read_dsn)).
    type: str
  duration:
    description:
      - How long to start writes, in seconds (1 to 3600). A connect or write in flight at the end runs
        to its own timeout, so a write the probe itself cut off is never counted as an error.
      - Stopping the side threads and reading the ids back add a few O(connect_timeout) and
        O(write_timeout) at most; give C(async) some margin above O(duration).
    type: float
    required: true
  interval_ms:
    description:
      - Time between the starts of two write attempts, in milliseconds (1 to 60000).
      - After an error the next attempt (a reconnect) starts at the next tick.
    type: int
    default: 10
  connect_timeout:
    description:
      - Seconds allowed for each host's connection attempt (0.1 to 60), enforced by the probe itself.
    type: float
    default: 1
  start_timeout:
    description:
      - Seconds (0 to 60) to keep trying, every half second, when the endpoint cannot be reached or a
        check before the run fails with a connection or statement error. Bad input (a standby behind
        O(dsn), an unusable table) fails at once.
      - Use it right after the cluster changed, for example just after Pgpool-II attached a node and
        restarts its child processes, which close the first sessions they hand out.
      - The run, and O(duration), start only after the checks passed.
    type: float
    default: 0
  write_timeout:
    description:
      - Seconds the probe waits for one INSERT to be acknowledged (0.1 to 600) before it abandons the
        connection and counts a C(timeout) error.
      - Also sets libpq's C(tcp_user_timeout) unless O(dsn) sets it.
      - No server-side C(statement_timeout) is set on purpose, because cancelling a synchronous
        replication wait makes the server acknowledge a commit that was not replicated.
    type: float
    default: 2
  table:
    description:
      - Table the probe writes to, C(name) or C(schema.name), lower case.
    type: str
    default: pgha_write_probe
  run_id:
    description:
      - Tag stored with every row of this run (1 to 64 letters, digits or C(_.:-)).
      - Defaults to a time stamp plus a random suffix. Must not already be present in O(table).
    type: str
  fault_at:
    description:
      - Epoch seconds of the fault injection, when known before the probe starts.
      - Mutually exclusive with O(fault_marker_file).
    type: float
  fault_marker_file:
    description:
      - Path on the probe host that the playbook creates when it injects the fault (the async
        pattern, where the fault time is not known when the probe starts).
      - It is read once writing stops. Its content, an epoch time such as the output of
        C(date +%s.%N), is the fault time; when the content is not a number the file's
        modification time is used.
      - Write it just before injecting the fault, on the probe host's clock.
      - Must not exist when the probe starts.
    type: path
  verify_dsns:
    description:
      - Direct DSN of every node (never a load balancer). After the run the probe finds the node that
        is not in recovery and reads the ids back from it.
      - Give a YAML list; a comma-separated string would be split into several DSNs.
      - When empty the check reads through O(dsn) with a warning.
    type: list
    elements: str
    default: []
    aliases: [verify_dsn]
  split_brain_dsns:
    description:
      - Direct DSN of every node (at least two). A second thread asks each node every
        O(split_brain_interval_ms) whether it is out of recovery and not read-only; a round where
        two or more nodes accept writes is recorded.
      - Nodes are polled one after the other, so one round spans their query times.
    type: list
    elements: str
    default: []
  split_brain_interval_ms:
    description:
      - Time between two split-brain polling rounds, in milliseconds (10 to 60000).
    type: int
    default: 200
  read_dsn:
    description:
      - Read endpoint (for example a standby pool). A third thread reads C(max(id)) of this run through
        it every O(interval_ms); a read that misses a write acknowledged more than
        O(stale_read_bound_ms) before it started counts as stale.
    type: str
  stale_read_bound_ms:
    description:
      - Replication delay tolerated before a read counts as stale, in milliseconds (0 to 3600000).
    type: int
    default: 1000
  create_table:
    description:
      - Create O(table) when it is missing. When false the table must exist.
      - Keep it true behind a load balancer that sends reads to standbys (Pgpool-II). The probe's
        checks run in one transaction with the C(CREATE TABLE IF NOT EXISTS), which keeps them on
        the primary; without it they may read a standby that lacks the table.
    type: bool
    default: true
  cleanup:
    description:
      - Drop O(table) on the primary after the check, with the rows of every run in it.
    type: bool
    default: false
notes:
  - Needs psycopg 3 (C(python3-psycopg)) on the host that runs the probe.
  - Minimum PostgreSQL version - 10 (C(pg_current_wal_lsn())). Tested with PostgreSQL 15, the only version
    packaged for Debian 12.
  - Nothing is written before the options are validated and O(dsn) is proven to reach a primary.
  - Wall-clock times in the result are epoch seconds derived from a monotonic clock anchored at the
    start, so a clock step during the run does not distort gaps.
requirements:
  - psycopg >= 3.1
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Only checks that O(dsn) reaches a primary; measures nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Ten seconds of writes through a multi-host DSN, no fault
  pgha.cluster.write_probe:
    dsn: host=10.0.0.11,10.0.0.12 port=5432 user=postgres dbname=postgres target_session_attrs=read-write
    password: "{{ postgres_password }}"
    duration: 10
    verify_dsns:
      - host=10.0.0.11 user=postgres dbname=postgres
      - host=10.0.0.12 user=postgres dbname=postgres

# The drill: start the probe in the background, break the primary, collect the numbers.
- name: Start the probe
  pgha.cluster.write_probe:
    dsn: host=10.0.0.100 user=postgres dbname=postgres   # the solution's endpoint (VIP, HAProxy, Pgpool-II)
    password: "{{ postgres_password }}"
    duration: 60
    run_id: "drill-{{ ha }}-{{ run_number }}"
    fault_marker_file: /tmp/pgha-drill.fault
    verify_dsns: "{{ groups['postgres'] | map('regex_replace', '^(.*)$', 'host=\\1 user=postgres dbname=postgres') | list }}"
    split_brain_dsns: "{{ groups['postgres'] | map('regex_replace', '^(.*)$', 'host=\\1 user=postgres dbname=postgres') | list }}"
  async: 120
  poll: 0
  register: probe_job

- name: Let the probe see a steady state first
  ansible.builtin.pause:
    seconds: 10

- name: Mark the fault time on the probe host, then kill the primary's postmaster
  ansible.builtin.shell: |
    date +%s.%N > /tmp/pgha-drill.fault
    ssh {{ primary_host }} 'pkill -9 -o -u postgres postgres'
  changed_when: true

- name: Wait for the probe's report
  ansible.builtin.async_status:
    jid: "{{ probe_job.ansible_job_id }}"
  register: probe
  until: probe.finished
  retries: 120
  delay: 1

- name: Fail the drill when an acknowledged write was lost
  ansible.builtin.assert:
    that:
      - probe.lost_count == 0
      - probe.split_brain_count == 0
    fail_msg: "lost {{ probe.lost_count }} writes, e.g. {{ probe.lost }}; outage {{ probe.max_gap }} s"

- name: Remove the marker for the next drill
  ansible.builtin.file:
    path: /tmp/pgha-drill.fault
    state: absent
'''

RETURN = r'''
skipped:
  description: True in check mode, where nothing was written or measured.
  returned: check mode
  type: bool
  sample: true
run_id:
  description: Tag of this run's rows.
  returned: always
  type: str
  sample: 20240501T101500-3fa2c1d0
endpoint_node:
  description: Host and port O(dsn) led to before the run.
  returned: always
  type: str
  sample: 10.0.0.11:5432
table_exists:
  description: Whether O(table) already exists (check mode).
  returned: check mode
  type: bool
  sample: false
acknowledged:
  description: Number of writes the server acknowledged.
  returned: success
  type: int
  sample: 5873
attempts:
  description: Number of write attempts, including the ones that failed to connect (RV(acknowledged) + RV(errors.total)).
  returned: success
  type: int
  sample: 6000
errors:
  description: Failed attempts by class.
  returned: success
  type: dict
  contains:
    connect:
      description: Could not connect to any host of O(dsn).
      type: int
    connection_lost:
      description: The connection broke during the write (server crash, shutdown, reset).
      type: int
    read_only:
      description: The server refused the write as read-only (SQLSTATE 25006), for example a demoted node.
      type: int
    timeout:
      description: No acknowledgement within O(write_timeout).
      type: int
    other:
      description: Any other error.
      type: int
    total:
      description: Sum of all classes.
      type: int
  sample: {"connect": 12, "connection_lost": 1, "read_only": 0, "timeout": 0, "other": 0, "total": 13}
first_error:
  description: The first failed attempt (epoch time, class, message), or null.
  returned: success
  type: dict
  sample: {"time": 1714558512.021, "kind": "connection_lost", "message": "server closed the connection unexpectedly"}
last_error:
  description: The last failed attempt (epoch time, class, message), or null.
  returned: success
  type: dict
  sample: {"time": 1714558520.311, "kind": "connect", "message": "10.0.0.11:5432 connection refused"}
run_started:
  description:
    - Epoch time the writing started.
    - Not named C(started), which C(async_status) would read as the job's state.
  returned: success
  type: float
  sample: 1714558502.0012
run_ended:
  description: Epoch time the writing and the side threads stopped.
  returned: success
  type: float
  sample: 1714558562.0131
max_gap:
  description: Longest time in seconds between two consecutive acknowledged writes (the RTO), null with fewer than two.
  returned: success
  type: float
  sample: 8.3127
max_gap_start:
  description: Epoch time of the acknowledged write that opened the longest gap.
  returned: success
  type: float
  sample: 1714558512.0113
max_gap_end:
  description: Epoch time of the acknowledged write that closed the longest gap.
  returned: success
  type: float
  sample: 1714558520.324
trailing_gap:
  description: Seconds from the last acknowledged write to the end of the run; a large value means writes never came back.
  returned: success
  type: float
  sample: 0.0102
fault_time:
  description: Epoch time of the fault (O(fault_at) or from O(fault_marker_file)), null when unknown.
  returned: success
  type: float
  sample: 1714558512.0
fault_time_source:
  description: Where RV(fault_time) came from.
  returned: success
  type: str
  choices: [fault_at, marker_content, marker_mtime]
  sample: marker_content
fault_to_first_write:
  description:
    - Seconds from the fault to the first write acknowledged after the first failed attempt that
      followed it (the end of the outage it caused); when nothing failed after the fault, to the
      first write acknowledged after it.
    - Null without a fault time, or when no write was acknowledged afterwards.
  returned: success
  type: float
  sample: 8.3241
verified:
  description: Whether the ids were read back from a primary.
  returned: success
  type: bool
  sample: true
verify_errors:
  description: Nodes that could not be checked after the run, with the error.
  returned: success
  type: list
  elements: dict
  sample: [{"node": "10.0.0.11:5432", "error": "connection refused"}]
primary_after:
  description: Host and port of the node that was primary after the run (the one checked), null if none.
  returned: success
  type: str
  sample: 10.0.0.12:5432
timeline_after:
  description: Timeline of RV(primary_after).
  returned: success
  type: int
  sample: 2
lost:
  description: Acknowledged ids missing on the primary after the run (first 100), null when not verified.
  returned: success
  type: list
  elements: int
  sample: []
lost_count:
  description: Number of acknowledged ids missing on the primary (the RPO in writes), null when not verified.
  returned: success
  type: int
  sample: 0
indeterminate:
  description: Ids whose write returned an error but which are on the primary (first 100), null when not verified.
  returned: success
  type: list
  elements: int
  sample: [1043]
indeterminate_count:
  description: Number of such ids.
  returned: success
  type: int
  sample: 1
split_brain:
  description:
    - Episodes (first 100) where two or more nodes of O(split_brain_dsns) accepted writes; consecutive
      rounds with the same nodes form one episode.
  returned: success
  type: list
  elements: dict
  sample: [{"start": 1714558515.2, "end": 1714558516.4, "nodes": ["10.0.0.11:5432", "10.0.0.12:5432"], "rounds": 7}]
split_brain_count:
  description: Number of polling rounds in which two or more nodes accepted writes.
  returned: success
  type: int
  sample: 0
split_brain_rounds:
  description: Number of completed polling rounds (0 without O(split_brain_dsns)).
  returned: success
  type: int
  sample: 300
writable_last_seen:
  description:
    - For each node of O(split_brain_dsns) that accepted writes during the run, the epoch time of the
      last polling round in which it did. A primary cut off from its HA coordination but still reachable
      by clients should stop accepting writes; this says when it did, as seen from the probe.
  returned: success
  type: dict
  sample: {"10.0.0.11:5432": 1714558517.2, "10.0.0.12:5432": 1714558562.0}
stale_reads:
  description: Reads through O(read_dsn) that missed a write acknowledged more than O(stale_read_bound_ms) earlier; null without O(read_dsn).
  returned: success
  type: int
  sample: 0
start_attempts:
  description: How many times the probe tried its first session before the run (see O(start_timeout)).
  returned: success
  type: int
  sample: 1
stale_reads_after_recovery:
  description:
    - Of RV(stale_reads), those sent more than O(stale_read_bound_ms) after the first write acknowledged
      after the fault (after the fault itself when no write came back). These are reads the endpoint still
      sent to a member that had not caught up with the new primary, the stale reads a failover should leave
      none of.
    - Null without O(read_dsn) or without a fault time.
  returned: success
  type: int
  sample: 0
reads:
  description: Read counters (attempts, succeeded, errors, stale); null without O(read_dsn).
  returned: success
  type: dict
  sample: {"attempts": 5900, "succeeded": 5700, "errors": 200, "stale": 0}
table_created:
  description: Whether the probe created O(table).
  returned: success
  type: bool
  sample: true
cleaned_up:
  description: Whether O(table) was dropped after the run.
  returned: success
  type: bool
  sample: false
settings:
  description: Every setting behind the numbers (the endpoint without password, timeouts, intervals, checked nodes).
  returned: always
  type: dict
  sample: {"endpoint": "host=10.0.0.100 user=postgres", "duration": 60.0, "interval_ms": 10, "connect_timeout": 1.0,
           "write_timeout": 2.0, "tcp_user_timeout": "2000", "table": "pgha_write_probe", "split_brain_interval_ms": 200, "stale_read_bound_ms": null,
           "verify_nodes": ["10.0.0.11:5432", "10.0.0.12:5432"], "split_brain_nodes": [], "read_endpoint": null, "report_cap": 100}
'''

import traceback


from ansible_collections.pgha.cluster.plugins.module_utils.postgres import ConninfoModule, ensure_psycopg
from ansible_collections.pgha.cluster.plugins.module_utils.probe import (
    ProbeConfig, ProbeConfigError, ProbeError, WriteProbe)


def argument_spec():
    return dict(
        dsn=dict(type='str', required=True),
        password=dict(type='str', no_log=True),
        duration=dict(type='float', required=True),
        interval_ms=dict(type='int', default=10),
        connect_timeout=dict(type='float', default=1),
        start_timeout=dict(type='float', default=0),
        write_timeout=dict(type='float', default=2),
        table=dict(type='str', default='pgha_write_probe'),
        run_id=dict(type='str'),
        fault_at=dict(type='float'),
        fault_marker_file=dict(type='path'),
        verify_dsns=dict(type='list', elements='str', default=[], aliases=['verify_dsn']),
        split_brain_dsns=dict(type='list', elements='str', default=[]),
        split_brain_interval_ms=dict(type='int', default=200),
        read_dsn=dict(type='str'),
        stale_read_bound_ms=dict(type='int', default=1000),
        create_table=dict(type='bool', default=True),
        cleanup=dict(type='bool', default=False),
    )


def main():
    module = ConninfoModule(['dsn', 'read_dsn', 'verify_dsns', 'split_brain_dsns'],
                            argument_spec=argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[('fault_at', 'fault_marker_file')])
    ensure_psycopg(module)
    try:
        config = ProbeConfig(**dict((k, module.params[k]) for k in argument_spec()))
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc))
    probe = WriteProbe(config)
    base = dict(changed=False, run_id=config.run_id, settings=config.settings())
    try:
        if module.check_mode:
            base.update(probe.check(), skipped=True)
            module.exit_json(**base)
        probe.preflight()
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc), **base)
    except ProbeError as exc:
        module.fail_json(msg='Cannot use the write endpoint dsn (%s): %s. Check dsn, password, pg_hba.conf and '
                             'that a primary is up before starting the probe.' % (config.endpoint.label, exc.message),
                         **base)
    try:
        result = probe.run()
    except Exception as exc:  # report a probe bug as a failed task, never as a bare traceback
        module.fail_json(msg='The write probe stopped unexpectedly: %s' % exc, exception=traceback.format_exc(), **base)
    for warning in probe.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
