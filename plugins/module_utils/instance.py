# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which server is which: the running instance of a data directory, read over SQL.

A physical replica shares its primary's system identifier, so the system
identifier cannot tell a node from its standby. ``postmaster.pid`` can: its
first seven lines (postmaster PID, data directory, start time, port, socket
directory, listen addresses, shared memory key) identify one running
instance on one host. A server reached over a connection shows its own
``postmaster.pid`` through ``pg_read_binary_file()`` (a function pg_rewind
needs anyway), so comparing it with the local file answers "is the server
behind this connection the one running on this data directory?" without
changing anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import connection_kwargs, dict_row, psycopg

POSTMASTER_PID = 'postmaster.pid'
# pid, data directory, start time, port, socket directory, listen addresses, shmem key;
# the 8th line (status: starting/ready/standby/stopping) changes while the server runs.
_IDENTITY_LINES = 7


def parse_postmaster_pid(text):
    """The fields of a postmaster.pid text as a dict (None for a missing or empty text)."""
    lines = (text or '').splitlines()
    if not lines or not lines[0].strip().isdigit():
        return None
    lines += [''] * (8 - len(lines))
    return dict(pid=int(lines[0]), data_directory=lines[1], start_time=lines[2].strip(),
                port=lines[3].strip(), socket_directories=lines[4].strip(),
                listen_addresses=lines[5].strip(), identity=tuple(x.strip() for x in lines[:_IDENTITY_LINES]))


def local_postmaster(data_directory):
    """postmaster.pid of ``data_directory`` parsed, or None when no server has it open."""
    try:
        with open(os.path.join(data_directory, POSTMASTER_PID)) as handle:
            return parse_postmaster_pid(handle.read())
    except (IOError, OSError):
        return None


def remote_postmaster(conn):
    """(postmaster.pid of the server behind ``conn`` parsed, error text)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_read_binary_file('%s', 0, 8192, true) AS pid" % POSTMASTER_PID)
            row = cur.fetchone()
    except Exception as exc:
        return None, str(exc).strip()
    value = row['pid'] if isinstance(row, dict) else row[0]
    if value is None:
        return None, 'the server has no postmaster.pid'
    return parse_postmaster_pid(bytes(value).decode('utf-8', 'replace')), None


def same_instance(conn, data_directory):
    """Whether the server behind ``conn`` is the one running on ``data_directory`` here.

    Returns ``(True|False|None, detail)``; None when the server does not let
    the session read its postmaster.pid (the detail says why).
    """
    local = local_postmaster(data_directory)
    if local is None:
        return False, 'no server runs on %s' % data_directory
    remote, error = remote_postmaster(conn)
    if remote is None:
        return None, 'cannot read the postmaster.pid of the server reached: %s' % error
    if remote['identity'] == local['identity']:
        return True, 'same postmaster (PID %d, port %s)' % (local['pid'], local['port'])
    return False, 'the server reached runs on %s (port %s), not on %s' % (
        remote['data_directory'], remote['port'], data_directory)


def local_addresses(postmaster):
    """Where the server of a postmaster.pid listens: its socket directories, then a TCP address."""
    hosts = [d.strip() for d in postmaster['socket_directories'].split(',') if d.strip()]
    listen = [a.strip() for a in postmaster['listen_addresses'].split(',') if a.strip()]
    if not listen:
        return hosts  # listen_addresses = '': sockets only
    if set(listen) & set(['*', '0.0.0.0', '127.0.0.1', 'localhost']):
        hosts.append('127.0.0.1')
    elif set(listen) & set(['::', '::1']):
        hosts.append('::1')
    else:
        hosts.append(listen[0])
    return hosts


def connect_local(data_directory, user, password, dbname, connect_timeout):
    """A connection to the server running on ``data_directory``, or (None, why not).

    Tries the server's Unix socket, then its TCP address, with the given
    credentials, and keeps a connection only if it reaches that very server.
    """
    postmaster = local_postmaster(data_directory)
    if postmaster is None:
        return None, 'no server runs on %s' % data_directory
    errors = []
    for host in local_addresses(postmaster):
        kwargs = connection_kwargs(dict(host=host, port=postmaster['port'], user=user, db=dbname, password=password,
                                        connect_timeout=max(2, connect_timeout)), prefix='')
        try:
            conn = psycopg.connect(autocommit=True, row_factory=dict_row, **kwargs)
        except Exception as exc:
            errors.append('%s: %s' % (host, str(exc).strip()))
            continue
        same, detail = same_instance(conn, data_directory)
        if same:
            return conn, None
        conn.close()
        errors.append('%s: %s' % (host, detail))
    return None, '; '.join(errors)


def wal_receiver(conn):
    """The server's pg_stat_wal_receiver row (status, received_tli, sender_host, sender_port) or None."""
    with conn.cursor() as cur:
        cur.execute('SELECT status, received_tli, sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver')
        return cur.fetchone()


def wait_streaming(conn, host, port, timeline, timeout):
    """Wait (bounded) until the server streams from host:port on ``timeline``; returns the last row seen."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        row = wal_receiver(conn)
        if row and row['status'] == 'streaming' and row['received_tli'] == timeline \
                and row['sender_host'] == str(host) and str(row['sender_port']) == str(port):
            return row, True
        if time.monotonic() >= deadline:
            return row, False
        time.sleep(0.5)
