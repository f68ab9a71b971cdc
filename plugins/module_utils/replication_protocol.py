# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The physical replication protocol, read only: connect as the replication user, IDENTIFY_SYSTEM, slots."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import connection_kwargs, ensure_psycopg, psycopg


def replication_connect(module, repl, fail=True):
    """A physical replication connection to the primary (validates credentials)."""
    ensure_psycopg(module)
    kwargs = connection_kwargs(dict(host=repl['host'], port=repl['port'], user=repl['user'], db='replication',
                                    password=repl.get('password'), ssl_mode=repl.get('sslmode'),
                                    ca_cert=repl.get('sslrootcert'), connect_timeout=repl['connect_timeout']),
                               prefix='')
    kwargs['replication'] = 'true'
    try:
        return psycopg.connect(autocommit=True, **kwargs)
    except Exception as exc:
        message = ('Cannot open a replication connection to %s:%s as %s: %s. Check primary_host/primary_port '
                   '(or source_host/source_port), replication_user and replication_password, and that '
                   'pg_hba.conf has a "replication" line for this host.'
                   % (repl['host'], repl['port'], repl['user'], str(exc).strip()))
        if fail:
            module.fail_json(msg=message)
        return message


def replication_command(module, conn, command):
    """Run a replication protocol command (simple query protocol); rows as lists of str."""
    res = conn.pgconn.exec_(command.encode('utf-8'))
    if res.status not in (1, 2):  # COMMAND_OK, TUPLES_OK
        raise RuntimeError((res.error_message or b'').decode('utf-8', 'replace').strip())
    rows = []
    for row in range(res.ntuples):
        rows.append([None if res.get_value(row, col) is None else res.get_value(row, col).decode('utf-8')
                     for col in range(res.nfields)])
    return rows


def identify_system(module, conn):
    row = replication_command(module, conn, 'IDENTIFY_SYSTEM')[0]
    return dict(system_identifier=row[0], timeline=int(row[1]), xlogpos=row[2])


def slot_exists(module, conn, slot_name):
    """True/False, or None when the server is too old to tell (< 15)."""
    if conn.info.server_version < 150000:
        return None
    rows = replication_command(module, conn, 'READ_REPLICATION_SLOT "%s"' % slot_name.replace('"', '""'))
    return bool(rows) and rows[0][0] is not None


def drop_slot(module, conn_factory, slot_name):
    conn = conn_factory()
    if isinstance(conn, str):
        return False
    try:
        replication_command(module, conn, 'DROP_REPLICATION_SLOT "%s"' % slot_name.replace('"', '""'))
        return True
    except Exception:
        return False
    finally:
        conn.close()
