# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safety checks of the rewind module: refuse every wrong target before anything stops.

pg_rewind itself accepts cases that take a healthy cluster down: a primary
"rewound" onto its own standby finds "no rewind required", and the module
would then write standby.signal and demote the only primary. These checks
read the node and the source (files and SQL, never a change) and return the
reason to refuse, so that check mode and a real run refuse alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.pgha.cluster.plugins.module_utils.instance import same_instance, wait_streaming
from ansible_collections.pgha.cluster.plugins.module_utils.pg_server import lsn_to_int
from ansible_collections.pgha.cluster.plugins.module_utils.replication import (
    current_timeline,
    latest_history_timeline,
    parse_history_file,
)
from ansible_collections.pgha.cluster.plugins.module_utils.replication_protocol import replication_command
from ansible_collections.pgha.cluster.plugins.module_utils.standby import conninfo_points_at

# Control file states of a node that was a primary when it stopped (or still is one).
PRIMARY_STATES = ('in production', 'shut down', 'shutting down', 'in crash recovery')


def source_is_target(conn, data_directory, target_running):
    """Refusal text when the source connection reaches the node itself, else None."""
    if not target_running:
        return None  # the node is down, so whatever answered is another server
    same, detail = same_instance(conn, data_directory)
    if same is None:
        return ('cannot tell whether the source is the node itself (%s); grant source_user EXECUTE on '
                'pg_read_binary_file(text, bigint, bigint, boolean), which pg_rewind needs anyway' % detail)
    if same:
        return ('source_host/source_port reach the node itself (%s), not the new primary; point '
                'source_host and source_port at the server the node must follow' % detail)
    return None


def node_role(target, running, local_conn):
    """'primary' when the node is (or stopped as) a primary, else 'standby'.

    A running server answers over SQL when the module could log in; otherwise
    the files say it: no standby.signal/recovery.signal and a primary's
    control file state.
    """
    if running and local_conn is not None:
        with local_conn.cursor() as cur:
            cur.execute('SELECT pg_catalog.pg_is_in_recovery() AS r')
            return 'standby' if cur.fetchone()['r'] else 'primary'
    data_directory = target['data_directory']
    if target['standby_signal'] or os.path.exists(os.path.join(data_directory, 'recovery.signal')):
        return 'standby'
    return 'primary' if target['cluster_state'] in PRIMARY_STATES else 'standby'


def primary_timeline(target, running, local_conn):
    """Timeline a (former) primary writes on.

    The control file lags right after a promotion (until the next
    checkpoint), but a promoted node always has its timeline's history file.
    """
    if running and local_conn is not None:
        return current_timeline(local_conn, False)[0]
    candidates = [target.get('timeline'), target.get('min_recovery_timeline'),
                  latest_history_timeline(os.path.join(target['data_directory'], 'pg_wal'))]
    return max([c for c in candidates if c] or [0]) or None


def demotes_a_newer_primary(target, running, local_conn, source):
    """Refusal text when the node is a primary and the source is not on a newer timeline, else None.

    Rejoining a former primary is only right after another server was
    promoted: the source must be on a later timeline than the node. On the
    same or an older timeline the source is the node's own standby (or
    behind it), and rewinding would leave no primary at all.
    """
    if target['kind'] != 'cluster' or target['system_identifier'] != source['system_identifier']:
        return None  # another cluster: not a member, the reclone fallback decides
    if node_role(target, running, local_conn) != 'primary':
        return None
    timeline = primary_timeline(target, running, local_conn)
    if timeline is None or source['timeline'] > timeline:
        return None
    state = 'a running' if running else 'a stopped'
    kind = 'a standby' if source['in_recovery'] else 'a primary'
    return ('the node is %s primary on timeline %d and the source %s:%s is %s on timeline %d, not on a newer '
            'timeline: it was not promoted, so rewinding would demote the node onto a server that is not ahead '
            'of it. Promote the source first (a rejoin follows a failover), or point source_host/source_port '
            'at the new primary' % (state, timeline, source['host'], source['port'], kind, source['timeline']))


def follows_source(target, running, local_conn, source, repl, configured_conninfo, wait_seconds):
    """Whether the node already is a standby of the source on the source's timeline.

    Returns ``(following, timeline, note)``. A running standby is judged by
    what it does, read over SQL (pg_stat_wal_receiver: streaming from
    source_host:source_port on the source's timeline), because its control
    file keeps the old timeline until its next restartpoint. A stopped
    standby is judged by its control file and configuration. ``note`` says
    why a running standby could not be judged over SQL (None otherwise).
    """
    if target['kind'] != 'cluster' or not target['standby_signal'] \
            or target['system_identifier'] != source['system_identifier'] \
            or not conninfo_points_at(configured_conninfo, repl['host'], repl['port']):
        return False, None, None
    if running and local_conn is not None:
        row, streaming = wait_streaming(local_conn, repl['host'], repl['port'], source['timeline'], wait_seconds)
        return streaming, (row or {}).get('received_tli'), None
    timeline = max(target.get('timeline') or 0, target.get('min_recovery_timeline') or 0) or None
    note = None
    if running:
        # Without a session the history files tell the newest timeline the standby has reached.
        timeline = max(timeline or 0, latest_history_timeline(os.path.join(target['data_directory'], 'pg_wal'))
                       or 0) or None
        note = ('the running node could not be asked over SQL whether it streams from the source, so its '
                'timeline was read from its files')
    return timeline == source['timeline'], timeline, note


def primary_history(module, conn, timeline):
    """The primary's timeline history over a replication connection: [{parent_timeline, switchpoint}]."""
    if timeline <= 1:
        return []
    content = replication_command(module, conn, 'TIMELINE_HISTORY %d' % timeline)[0][1] or ''
    if content.startswith('\\x'):  # bytea in hex form
        content = bytes.fromhex(content[2:]).decode('utf-8', 'replace')
    return parse_history_file(content)


def wal_record_after(runner, data_directory, timeline, lsn):
    """The LSN of the first valid WAL record at or after ``lsn`` on ``timeline`` in the node's pg_wal, or None.

    pg_waldump only reads the files; it is safe on a running server.
    """
    rc, out, err = runner.run('pg_waldump', ['-p', os.path.join(data_directory, 'pg_wal'), '-t', str(timeline),
                                             '-s', lsn, '-n', '1'], check=False)
    match = re.search(r'lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)', out or '')
    return match.group(1) if rc == 0 and match else None


def divergence(runner, target, primary_timeline, history):
    """Why the node cannot follow a primary on ``primary_timeline`` with ``history``, or None.

    The node can follow when every timeline it has WAL on is the primary's
    timeline or one of its ancestors, and on each ancestor the node has no
    WAL beyond the point where the primary's history left that timeline
    (else PostgreSQL logs "new timeline forked off current database system
    timeline before current recovery point" forever).
    """
    node_timeline = max(target.get('timeline') or 0, target.get('min_recovery_timeline') or 0)
    switchpoints = dict((entry['parent_timeline'], entry['switchpoint']) for entry in history)
    if node_timeline and node_timeline != primary_timeline and node_timeline not in switchpoints:
        return ('the node is on timeline %d, which is not in the primary\'s history (timeline %d, from %s)'
                % (node_timeline, primary_timeline, ', '.join(str(t) for t in sorted(switchpoints)) or 'none'))
    checkpoint = target.get('latest_checkpoint_location')
    for timeline, switchpoint in sorted(switchpoints.items()):
        if timeline == target.get('timeline') and checkpoint and lsn_to_int(checkpoint) > lsn_to_int(switchpoint):
            beyond = checkpoint
        else:
            beyond = wal_record_after(runner, target['data_directory'], timeline, switchpoint)
        if beyond:
            return ('the node has WAL on timeline %d at %s, at or after %s where the primary\'s timeline %d '
                    'forked off it' % (timeline, beyond, switchpoint, primary_timeline))
    return None
