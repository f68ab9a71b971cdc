# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication helpers for the replication_slot, replication_info and promote modules.

The pure helpers (slot name validation, WAL file / history file parsing,
peer address parsing, connection error classification) carry no driver
dependency and are unit tested in tests/unit/test_replication_utils.py.
The query helpers take an open psycopg connection (dict rows).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import decimal
import os
import re

SLOT_NAME_RE = re.compile(r'\A[a-z0-9_]{1,63}\Z')

# Minimum server version (server_version_num) of the optional slot features.
SLOT_FEATURE_MIN_VERSION = {
    'two_phase': 140000,
    'failover': 170000,
}


def validate_slot_name(name):
    """Return None when ``name`` is a valid replication slot name, else why not."""
    if name is None or name == '':
        return 'name must not be empty'
    if len(name) > 63:
        return 'name %r is %d characters long; the maximum is 63' % (name, len(name))
    if not SLOT_NAME_RE.match(name):
        return ('name %r is invalid: a replication slot name may contain only lower case letters, '
                'digits and the underscore character' % name)
    return None


def timeline_from_walfile(walfile_name):
    """'00000002000000000000000A' -> 2 (the first 8 hex digits are the timeline)."""
    if not walfile_name or len(walfile_name) < 8:
        return None
    try:
        return int(walfile_name[:8], 16)
    except ValueError:
        return None


def history_file_name(timeline):
    """2 -> '00000002.history'."""
    return '%08X.history' % int(timeline)


def parse_history_file(text):
    """Parse a timeline history file into a list of dicts.

    Each non-comment line is ``<parent tli> <switch point LSN> <reason>``;
    the result is ordered as the file, oldest first:
    ``[{'parent_timeline': 1, 'switchpoint': '0/3000060', 'reason': '...'}]``.
    """
    entries = []
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        try:
            parent = int(parts[0])
        except ValueError:
            continue
        entries.append({'parent_timeline': parent, 'switchpoint': parts[1],
                        'reason': parts[2].strip() if len(parts) > 2 else ''})
    return entries


def latest_history_timeline(pg_wal_dir):
    """Highest timeline that has a history file in ``pg_wal_dir`` (None when none)."""
    best = None
    try:
        names = os.listdir(pg_wal_dir)
    except OSError:
        return None
    for name in names:
        match = re.match(r'^([0-9A-F]{8})\.history$', name)
        if match:
            tli = int(match.group(1), 16)
            if best is None or tli > best:
                best = tli
    return best


def parse_peer(entry):
    """Turn one ``expected_primary_absent`` entry into libpq keyword arguments.

    Accepts ``host:port``, ``[ipv6]:port``, a bare ``host`` (port 5432) or a
    libpq conninfo string (anything containing ``=``; parsed by the caller
    with psycopg). Returns ``(kwargs, None)`` or ``(None, error)``; conninfo
    strings are returned as ``({'conninfo': entry}, None)``.
    """
    if entry is None or not str(entry).strip():
        return None, 'empty entry'
    entry = str(entry).strip()
    if '=' in entry or entry.startswith('postgres://') or entry.startswith('postgresql://'):
        return {'conninfo': entry}, None
    host, port = entry, '5432'
    if entry.startswith('['):
        end = entry.find(']')
        if end < 0:
            return None, 'unbalanced brackets in %r' % entry
        host = entry[1:end]
        rest = entry[end + 1:]
        if rest:
            if not rest.startswith(':'):
                return None, 'expected host:port, got %r' % entry
            port = rest[1:]
    elif entry.count(':') == 1:
        host, port = entry.split(':')
    elif entry.count(':') > 1:
        return None, 'write IPv6 addresses as [address]:port, got %r' % entry
    if not host:
        return None, 'missing host in %r' % entry
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None, 'invalid port %r in %r' % (port, entry)
    return {'host': host, 'port': int(port)}, None


# Fragments of libpq error messages that mean nothing answered at the address.
_UNREACHABLE_MARKERS = (
    'connection refused',
    'timeout expired',
    'no such file or directory',
    'could not translate host name',
    'no route to host',
    'network is unreachable',
    'could not connect to server',
    'host is down',
    'name or service not known',
    'temporary failure in name resolution',
)

# FATAL messages of a server that is up but does not accept sessions yet.
_NOT_ACCEPTING_MARKERS = (
    'the database system is starting up',
    'the database system is not yet accepting connections',
    'the database system is not accepting connections',
    'the database system is in recovery mode',
)


def classify_connection_error(message):
    """Classify a libpq connection error message.

    ``'unreachable'``: nothing answered (refused, timeout, no socket, DNS);
    ``'not_accepting'``: a server answered that it cannot take sessions yet
    (starting up, not yet consistent);
    ``'rejected'``: a server answered and refused us (authentication,
    pg_hba.conf, unknown database, too many clients...).
    """
    text = (message or '').lower()
    if 'fatal:' in text or 'error:' in text:
        for marker in _NOT_ACCEPTING_MARKERS:
            if marker in text:
                return 'not_accepting'
        return 'rejected'
    for marker in _UNREACHABLE_MARKERS:
        if marker in text:
            return 'unreachable'
    # libpq failed without a server-sent error: treat as nothing answering.
    return 'unreachable'


# Fragments of libpq error messages that mean the host answered that nothing listens there.
_NOTHING_LISTENS_MARKERS = (
    'connection refused',
    'no such file or directory',
)


def nothing_listens(message):
    """True when the host itself answered that no server listens (refused, no socket file).

    Unlike a timeout, an unknown route or a failed name lookup, this is
    evidence that no server runs at the address; silence is no evidence (a
    network partition looks the same as a crashed host).
    """
    text = (message or '').lower()
    return classify_connection_error(message) == 'unreachable' and \
        any(marker in text for marker in _NOTHING_LISTENS_MARKERS)


def mask_conninfo_password(conninfo):
    """Replace the value of password=... in a conninfo string by ********."""
    if not conninfo:
        return conninfo
    masked = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", r'\1********', conninfo)
    # URI form: postgresql://user:secret@host/db
    return re.sub(r'^(postgres(?:ql)?://[^:@/]*:)[^@/]*@', r'\1********@', masked)


def jsonable(value):
    """Convert a value from psycopg into something JSON can carry."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return dict((k, jsonable(v)) for k, v in value.items())
    return str(value)


def jsonable_row(row):
    return dict((k, jsonable(v)) for k, v in row.items()) if row is not None else None


# -- queries -------------------------------------------------------------------

def get_slot(conn, name):
    """The pg_replication_slots row of ``name`` (JSON friendly) or None."""
    with conn.cursor() as cur:
        cur.execute('SELECT * FROM pg_catalog.pg_replication_slots WHERE slot_name = %s', (name,))
        return jsonable_row(cur.fetchone())


def current_timeline(conn, in_recovery):
    """(timeline, source) of the server behind ``conn``.

    Primary: the first 8 hex digits of ``pg_walfile_name(pg_current_wal_lsn())``
    (pg_control_checkpoint() is stale right after a promotion).
    Standby: ``pg_stat_wal_receiver.received_tli`` when the WAL receiver
    runs, else the newest of the minimum recovery end and checkpoint
    timelines from the control file.
    """
    with conn.cursor() as cur:
        if not in_recovery:
            cur.execute('SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) AS walfile')
            tli = timeline_from_walfile(cur.fetchone()['walfile'])
            if tli:
                return tli, 'pg_walfile_name'
        else:
            cur.execute('SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver '
                        'WHERE received_tli > 0')
            row = cur.fetchone()
            if row and row['received_tli']:
                return int(row['received_tli']), 'pg_stat_wal_receiver'
            cur.execute('SELECT min_recovery_end_timeline AS tli FROM pg_catalog.pg_control_recovery()')
            recovery = cur.fetchone()
            cur.execute('SELECT timeline_id AS tli FROM pg_catalog.pg_control_checkpoint()')
            checkpoint = cur.fetchone()
            candidates = [r['tli'] for r in (recovery, checkpoint) if r and r['tli']]
            if candidates:
                return int(max(candidates)), 'pg_control_recovery'
        cur.execute('SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()')
        row = cur.fetchone()
        return (int(row['timeline_id']) if row and row['timeline_id'] else None), 'pg_control_checkpoint'


def probe_role(psycopg_module, kwargs):
    """Ask one server whether it is a primary.

    Returns ``(status, detail)`` where status is ``'primary'``, ``'standby'``,
    ``'absent'`` (the host answered that nothing listens), ``'unreachable'``
    (no answer at all: timeout, no route, unknown name) or ``'unknown'`` (a
    server answered but refused the session, so its role could not be read).
    """
    try:
        conn = psycopg_module.connect(autocommit=True, **kwargs)
    except Exception as exc:
        message = str(exc).strip()
        if classify_connection_error(message) == 'unreachable':
            return ('absent' if nothing_listens(message) else 'unreachable'), message
        return 'unknown', message
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT pg_catalog.pg_is_in_recovery()')
            in_recovery = cur.fetchone()[0]
    except Exception as exc:
        return 'unknown', str(exc).strip()
    finally:
        conn.close()
    return ('standby', 'pg_is_in_recovery() = true') if in_recovery else \
        ('primary', 'pg_is_in_recovery() = false')


def conninfo_passwords(conninfo):
    """Passwords written in a conninfo string or URI (regex based, works on invalid strings too)."""
    found = []
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", conninfo or ''):
        value = match.group(1)
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1].replace("\\'", "'").replace('\\\\', '\\')
        if value:
            found.append(value)
    uri = re.match(r'^postgres(?:ql)?://[^:@/]*:([^@/]*)@', conninfo or '')
    if uri and uri.group(1):
        found.append(uri.group(1))
    return found
