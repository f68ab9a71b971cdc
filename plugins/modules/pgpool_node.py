#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgpool_node
short_description: Attach, detach or promote a Pgpool-II backend node through PCP
description:
  - Declares the state of one backend node of a Pgpool-II (streaming replication mode) as
    Pgpool-II sees it, using the PCP client tools C(pcp_node_info), C(pcp_attach_node),
    C(pcp_detach_node), C(pcp_promote_node) and C(pcp_pool_status).
  - The node is read first with C(pcp_node_info --verbose -a); a PCP command runs only when the
    node is not already in the requested state, so a second run reports C(changed=false).
  - Attach, detach and promote are asynchronous in Pgpool-II. After the command the module
    polls C(pcp_node_info) until the node reaches the requested state, for at most
    O(pcp_timeout) seconds, and fails if it does not.
  - The PCP password is written to a private temporary PCPPASSFILE
    (C(hostname:port:username:password), mode 0600, removed afterwards) and never appears on
    a command line or in the result. C(-w) is always passed, so a PCP tool never prompts.
  - Tested with Pgpool-II 4.3 (Debian package pgpool2 4.3.5). O(switchover=true) needs 4.3 or
    later; C(pcp_node_info -a) needs 4.2 or later.
version_added: 0.1.0
author:
  - pgha.cluster contributors (@pgha)
requirements:
  - The Pgpool-II PCP client tools (Debian package C(pgpool2), RPM C(pgpool-II)) on the host that
    runs the module. The host needs network access to the PCP port only, not to PostgreSQL.
options:
  node_id:
    description:
      - Index of the backend node, the C(N) of C(backend_hostnameN) in C(pgpool.conf).
      - A node id that Pgpool-II does not have fails before anything is changed.
    type: int
    required: true
  state:
    description:
      - V(attached) - the node is in use by Pgpool-II (status C(up), or C(waiting) when no
        client has used it yet). Runs C(pcp_attach_node). Pgpool-II does not check that the
        node really follows the current primary; attach a standby only when it replicates
        from it (otherwise use C(pcp_recovery_node)).
      - V(detached) - Pgpool-II marks the node C(down) and stops routing to it. Runs
        C(pcp_detach_node), which also runs C(failover_command) and C(follow_primary_command)
        when they are set (detaching the primary triggers a failover). The PostgreSQL server
        itself is not touched.
      - V(primary) - Pgpool-II has this node as its primary (role C(primary)). Runs
        C(pcp_promote_node); what that does to PostgreSQL depends on O(switchover). The node
        must be attached first. Nothing runs when Pgpool-II already has it as primary.
    type: str
    choices: [attached, detached, primary]
    default: attached
  switchover:
    description:
      - Only for O(state=primary); must be given explicitly then, because the two forms differ
        completely.
      - V(false) - C(pcp_promote_node) without C(-s). Only Pgpool-II's view changes; B(PostgreSQL is not
        promoted). The node keeps running as a standby (C(pg_is_in_recovery()) stays true) and
        Pgpool-II marks every other node C(down) in its own state. Writes routed through
        Pgpool-II then go to a standby and fail until something else promotes it. If
        C(follow_primary_command) is set Pgpool-II still runs it (the module warns); its
        documentation advises disabling it first. Pgpool-II may later change its view back, for
        example when a node is attached again and it searches for the real primary.
      - V(true) - C(pcp_promote_node -s) (Pgpool-II 4.3 or later). Pgpool-II marks the current
        primary C(down) and runs C(failover_command) with this node as the new main node
        (C(%m)/C(%H)/C(%R)). PostgreSQL is promoted only if that command promotes it (the usual
        failover scripts do); C(follow_primary_command) then has to re-point the other nodes.
        The old primary stays detached in Pgpool-II until that command re-attaches it.
        The module refuses, before changing anything, when C(pcp_pool_status) shows an empty
        C(failover_command), because Pgpool-II would then only detach the current primary and
        be left without one. It waits up to O(pcp_timeout) for this node to become primary.
    type: bool
  gracefully:
    description:
      - Pass C(-g) to C(pcp_detach_node) (O(state=detached)) or C(pcp_promote_node)
        (O(state=primary)) so Pgpool-II waits until client sessions end (bounded by its
        C(client_idle_limit_in_recovery) / C(recovery_timeout)). Ignored for O(state=attached).
      - Raise O(pcp_timeout) above those limits when using it.
    type: bool
    default: false
  pcp_host:
    description:
      - Host name or address of Pgpool-II's PCP listener (C(pcp_listen_addresses)). A value starting
        with C(/) is the directory of the PCP Unix socket.
    type: str
    default: localhost
  pcp_port:
    description:
      - PCP port (C(pcp_port) in C(pgpool.conf)). The PCP tools accept 1024-65535 only.
    type: int
    default: 9898
  pcp_user:
    description:
      - PCP user, as listed in C(pcp.conf). Required with O(pcp_password).
      - When omitted the PCP tools use the OS user name running the module.
    type: str
  pcp_password:
    description:
      - Password of O(pcp_user). Written only to a temporary PCPPASSFILE (mode 0600) that is
        removed when the module ends; never passed on a command line, never returned.
      - Mutually exclusive with O(pcp_passfile). With neither, the PCP tools read the
        C(PCPPASSFILE) environment variable or C(~/.pcppass) of the remote user.
    type: str
  pcp_passfile:
    description:
      - Path of an existing PCP password file (C(hostname:port:username:password) lines, mode 0600)
        on the managed host, used as C(PCPPASSFILE).
      - Mutually exclusive with O(pcp_password).
    type: path
  pcp_timeout:
    description:
      - Seconds each PCP command may run, and the longest time to wait for the node to reach
        O(state) after the change.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Only C(pcp_node_info) and C(pcp_pool_status) run; the result predicts the change.
  diff_mode:
    support: full
    description: Shows node id, host, port, Pgpool-II status name and role before and after.
notes:
  - Tested with Pgpool-II 4.3 (Debian 12); the backends' PostgreSQL version does not matter to the module.
  - Many PCP failures exit with status 0 and only print C(ERROR:) on stderr, and
    C(pcp_promote_node) silently ignores a node that is down; the module checks the message
    and always reads the node back instead of trusting the exit status.
  - The node state lives in Pgpool-II's memory (and its C(pgpool_status) file). With the watchdog
    enabled, Pgpool-II propagates attach/detach/promote to the other Pgpool-II nodes; run the
    module against one of them.
seealso:
  - name: pcp_promote_node
    description: Pgpool-II documentation of pcp_promote_node, including the switchover option.
    link: https://www.pgpool.net/docs/43/en/html/pcp-promote-node.html
  - name: pcp_node_info
    description: Pgpool-II documentation of the node fields returned by this module.
    link: https://www.pgpool.net/docs/43/en/html/pcp-node-info.html
'''

EXAMPLES = r'''
- name: Take node 1 out of Pgpool-II for maintenance, waiting for its sessions to end
  pgha.cluster.pgpool_node:
    node_id: 1
    state: detached
    gracefully: true
    pcp_user: pcpadmin
    pcp_password: "{{ pgpool_pcp_password }}"
    pcp_timeout: 120

- name: Put node 1 back
  pgha.cluster.pgpool_node:
    node_id: 1
    state: attached
    pcp_user: pcpadmin
    pcp_password: "{{ pgpool_pcp_password }}"

- name: Planned switchover to node 1 through failover_command / follow_primary_command
  pgha.cluster.pgpool_node:
    node_id: 1
    state: primary
    switchover: true
    pcp_host: 10.0.0.10
    pcp_user: pcpadmin
    pcp_passfile: /var/lib/postgresql/.pcppass

- name: PostgreSQL was promoted by other means; only tell Pgpool-II which node is primary
  pgha.cluster.pgpool_node:
    node_id: 1
    state: primary
    switchover: false
    pcp_user: pcpadmin
    pcp_password: "{{ pgpool_pcp_password }}"

- name: Read the node only (check mode never changes anything)
  pgha.cluster.pgpool_node:
    node_id: 0
    state: attached
    pcp_user: pcpadmin
    pcp_password: "{{ pgpool_pcp_password }}"
  check_mode: true
  register: node0
'''

RETURN = r'''
node_before:
  description:
    - The node as C(pcp_node_info --verbose) showed it before any change. Integer fields are
      converted; fields that another Pgpool-II version adds are kept under a lower-case key.
  returned: success, and on failures after the node was read
  type: dict
  contains:
    node_id:
      description: Index of the node.
      type: int
      sample: 1
    hostname:
      description: C(backend_hostnameN).
      type: str
      sample: 127.0.0.1
    port:
      description: C(backend_portN).
      type: int
      sample: 5432
    status:
      description: Pgpool-II status code, 1 up (no connection yet), 2 up (pooled), 3 down.
      type: int
      sample: 2
    weight:
      description: Normalized load balance weight.
      type: float
      sample: 0.5
    status_name:
      description: Pgpool-II's view, C(waiting), C(up), C(down) (or C(quarantine) with watchdog).
      type: str
      sample: up
    backend_status:
      description: Whether PostgreSQL answers right now (PQping), C(up) or C(down).
      type: str
      sample: up
    role:
      description: Pgpool-II's view of the role, C(primary) or C(standby).
      type: str
      sample: standby
    backend_role:
      description: Real role from C(pg_is_in_recovery()), C(primary), C(standby) or C(unknown).
      type: str
      sample: standby
    replication_delay:
      description: Replication delay measured by the streaming replication check.
      type: int
      sample: 0
    replication_state:
      description: C(state) from C(pg_stat_replication), or C(none).
      type: str
      sample: streaming
    replication_sync_state:
      description: C(sync_state) from C(pg_stat_replication), or C(none).
      type: str
      sample: async
    last_status_change:
      description: Time of the last status change.
      type: str
      sample: '2026-11-26 08:06:02'
node_after:
  description:
    - The node after the change, read back from Pgpool-II (same fields as RV(node_before)).
    - In check mode, the prediction.
  returned: success, and on failures after the node was read
  type: dict
  sample:
    node_id: 1
    hostname: 127.0.0.1
    port: 5432
    status: 3
    weight: 0.5
    status_name: down
    backend_status: up
    role: standby
    backend_role: standby
    replication_delay: 0
    replication_state: streaming
    replication_sync_state: async
    last_status_change: '2026-11-26 08:06:05'
commands:
  description:
    - The PCP commands that changed (or, in check mode, would change) the node. Read-only
      commands are not listed. Never contains the password.
  returned: always
  type: list
  elements: str
  sample: ['pcp_detach_node -h localhost -p 9898 -U pcpadmin -w -g -n 1']
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.pcp import (
    NodeStateError,
    PcpClient,
    PcpError,
    STATES,
    ensure_node_state,
    find_pcp_bin_dir,
    summary,
)


def argument_spec():
    return dict(
        node_id=dict(type='int', required=True),
        state=dict(type='str', default='attached', choices=list(STATES)),
        switchover=dict(type='bool'),
        gracefully=dict(type='bool', default=False),
        pcp_host=dict(type='str', default='localhost'),
        pcp_port=dict(type='int', default=9898),
        pcp_user=dict(type='str'),
        pcp_password=dict(type='str', no_log=True),
        pcp_passfile=dict(type='path'),
        pcp_timeout=dict(type='int', default=60),
    )


def validate(module):
    """Bad input fails here, before any PCP command runs."""
    p = module.params
    if p['node_id'] < 0:
        module.fail_json(msg='node_id=%d is invalid: use the N of backend_hostnameN (0 or more).'
                         % p['node_id'])
    if not 1024 <= p['pcp_port'] <= 65535:
        module.fail_json(msg='pcp_port=%d is invalid: the PCP tools accept 1024-65535; use the '
                         'pcp_port of pgpool.conf (default 9898).' % p['pcp_port'])
    if p['pcp_timeout'] < 1:
        module.fail_json(msg='pcp_timeout must be at least 1 second.')
    if p['state'] == 'primary' and p['switchover'] is None:
        module.fail_json(msg='state=primary needs switchover set explicitly: false only changes '
                         "Pgpool-II's view of the primary (PostgreSQL is not promoted), true runs "
                         'failover_command to really promote the node.')
    if p['state'] != 'primary' and p['switchover']:
        module.fail_json(msg='switchover=true applies only to state=primary; remove it or set '
                         'state=primary.')
    if p['pcp_password'] is not None and not p['pcp_user']:
        module.fail_json(msg='pcp_password needs pcp_user (the PCP user of pcp.conf it belongs to).')
    if p['pcp_passfile']:
        if not os.path.isfile(p['pcp_passfile']):
            module.fail_json(msg='pcp_passfile=%s does not exist; create it '
                             '(hostname:port:username:password, mode 0600) or use pcp_password.'
                             % p['pcp_passfile'])
        if not os.access(p['pcp_passfile'], os.R_OK):
            module.fail_json(msg='pcp_passfile=%s is not readable by the user running the module.'
                             % p['pcp_passfile'])


def explain(exc, params):
    where = '%s:%s' % (params['pcp_host'], params['pcp_port'])
    if exc.kind == 'auth':
        return ('PCP authentication failed for pcp_user=%s at %s: check pcp_password (or the '
                'entry in pcp_passfile) against the md5 line for that user in pcp.conf. (%s)'
                % (params['pcp_user'], where, exc))
    if exc.kind == 'connection':
        return ('cannot reach Pgpool-II PCP at %s: check pcp_host/pcp_port against '
                'pcp_listen_addresses/pcp_port in pgpool.conf and that pgpool runs. (%s)'
                % (where, exc))
    if exc.kind == 'timeout':
        return ('PCP at %s did not answer in time: %s. Raise pcp_timeout or check Pgpool-II.'
                % (where, exc))
    return str(exc)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('pcp_password', 'pcp_passfile')],
        supports_check_mode=True,
    )
    validate(module)
    p = module.params

    bin_dir = find_pcp_bin_dir(module.get_bin_path)
    if bin_dir is None:
        module.fail_json(msg='pcp_node_info not found: install the Pgpool-II PCP client tools '
                         '(Debian package pgpool2, RPM pgpool-II) on the host running this module.')

    client = PcpClient(bin_dir, host=p['pcp_host'], port=p['pcp_port'], user=p['pcp_user'],
                       password=p['pcp_password'], passfile=p['pcp_passfile'],
                       timeout=p['pcp_timeout'], tmpdir=module.tmpdir)
    try:
        result = ensure_node_state(client, p['node_id'], p['state'], gracefully=p['gracefully'],
                                   switchover=bool(p['switchover']), check_mode=module.check_mode,
                                   wait_timeout=p['pcp_timeout'], warn=module.warn)
    except NodeStateError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except PcpError as exc:
        module.fail_json(msg=explain(exc, p), commands=client.history)
    finally:
        client.close()

    if module._diff:
        result['diff'] = dict(before=summary(result['node_before']),
                              after=summary(result['node_after']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
