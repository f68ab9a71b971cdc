# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL plumbing for the pgha.cluster modules.

Modules stay thin: connection handling, the common connection options and
the small query helpers every module needs live here. psycopg 3 is imported
lazily so that a missing driver yields a clear ``missing_required_lib`` error
instead of an import traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pgha.cluster.plugins.module_utils.replication import conninfo_passwords

PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg
    import psycopg.sql
    from psycopg.rows import dict_row
    psycopg_sql = psycopg.sql  # for modules that compose SQL with identifiers and literals
    HAS_PSYCOPG = True
except ImportError:
    psycopg = None
    psycopg_sql = None
    dict_row = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()


class ConninfoModule(AnsibleModule):
    """An AnsibleModule that keeps a password written inside a conninfo option out of its log and results.

    AnsibleModule logs the module's arguments to the target's syslog or
    journal ("Invoked with ...") while it validates them, before the module's
    own code could register such a password as no_log. This class masks it
    there, and in every result, so that the module can then refuse it with a
    message that names the no_log option to use instead.
    """

    def __init__(self, conninfo_options, **kwargs):
        self.conninfo_options = conninfo_options
        super(ConninfoModule, self).__init__(**kwargs)

    def _hide_conninfo_passwords(self):
        secrets = set()
        for name in self.conninfo_options:
            values = (getattr(self, 'params', None) or {}).get(name)
            for value in values if isinstance(values, list) else [values]:
                if value:
                    secrets.update(conninfo_passwords(str(value)))
        self.no_log_values.update(secrets)
        return sorted(secrets, key=len, reverse=True)

    def log(self, msg, log_args=None):
        for secret in self._hide_conninfo_passwords():
            msg = msg.replace(secret, '********')
            log_args = dict((k, str(v).replace(secret, '********')) for k, v in (log_args or {}).items())
        super(ConninfoModule, self).log(msg, log_args=log_args)

    def exit_json(self, **kwargs):
        self._hide_conninfo_passwords()
        super(ConninfoModule, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._hide_conninfo_passwords()
        super(ConninfoModule, self).fail_json(msg, **kwargs)


def connection_argument_spec():
    """Options shared by every module that connects to PostgreSQL.

    Documented once in the ``pgha.cluster.connection`` doc fragment.
    """
    return dict(
        login_host=dict(type='str', default=''),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', default='', no_log=True),
        login_db=dict(type='str', default='postgres'),
        login_unix_socket=dict(type='str', default=''),
        connect_timeout=dict(type='int', default=5),
        ssl_mode=dict(type='str', default='prefer',
                      choices=['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']),
        ca_cert=dict(type='path'),
    )


def ensure_psycopg(module):
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib('psycopg (version 3)'),
                         exception=PSYCOPG_IMPORT_ERROR)


def connection_kwargs(params, prefix='login_'):
    """Translate module parameters into libpq keyword arguments.

    ``prefix`` lets a module accept a second set of options (for example
    ``primary_host`` / ``primary_port``) built the same way.
    """
    host = params.get(prefix + 'unix_socket') or params.get(prefix + 'host') or ''
    kwargs = {
        'host': host,
        'port': params.get(prefix + 'port') or 5432,
        'user': params.get(prefix + 'user') or 'postgres',
        'dbname': params.get(prefix + 'db') or 'postgres',
        'connect_timeout': params.get('connect_timeout') or 5,
        'application_name': 'pgha.cluster',
    }
    if params.get(prefix + 'password'):
        kwargs['password'] = params[prefix + 'password']
    if params.get('ssl_mode'):
        kwargs['sslmode'] = params['ssl_mode']
    if params.get('ca_cert'):
        kwargs['sslrootcert'] = params['ca_cert']
    return dict((k, v) for k, v in kwargs.items() if v not in (None, ''))


def describe_target(kwargs):
    """A password-free description of where we tried to connect."""
    return 'host=%s port=%s user=%s dbname=%s' % (
        kwargs.get('host', '(default socket)'), kwargs.get('port'),
        kwargs.get('user'), kwargs.get('dbname'))


def connect(module, params=None, prefix='login_', autocommit=True, fail=True):
    """Open a psycopg connection with dict rows.

    Returns the connection, or calls ``fail_json`` with a message that says
    where the connection went and how to fix it. With ``fail=False`` the
    error text is returned as ``(None, message)`` so callers can fall back
    (for example to pg_ctl when the server is down).
    """
    ensure_psycopg(module)
    kwargs = connection_kwargs(params if params is not None else module.params, prefix)
    try:
        conn = psycopg.connect(autocommit=autocommit, row_factory=dict_row, **kwargs)
    except Exception as exc:  # psycopg raises OperationalError and friends
        message = 'Unable to connect to PostgreSQL (%s): %s. Check the %s* options, pg_hba.conf ' \
                  'and that the server is running.' % (describe_target(kwargs), str(exc).strip(), prefix)
        if not fail:
            return None, message
        module.fail_json(msg=message)
    if not fail:
        return conn, None
    return conn


def fetch_one(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()


def fetch_all(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def execute(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)


def server_version_num(conn):
    return conn.info.server_version


def version_string(version_num):
    """150004 -> '15.4'; 90624 -> '9.6.24'."""
    if version_num >= 100000:
        return '%d.%d' % (version_num // 10000, version_num % 10000)
    return '%d.%d.%d' % (version_num // 10000, (version_num // 100) % 100, version_num % 100)


def quote_conninfo_value(value):
    """Quote one libpq conninfo value (single quotes, backslash escapes)."""
    value = str(value)
    if value and all(c.isalnum() or c in '._-/:@' for c in value):
        return value
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


def build_conninfo(items):
    """Build a conninfo string from an ordered list of (key, value) pairs.

    Pairs whose value is None or '' are skipped.
    """
    return ' '.join('%s=%s' % (k, quote_conninfo_value(v)) for k, v in items if v not in (None, ''))


def parse_conninfo(conninfo):
    """Parse a conninfo string into a dict (needs psycopg)."""
    if not conninfo:
        return {}
    from psycopg.conninfo import conninfo_to_dict
    return dict((k, str(v)) for k, v in conninfo_to_dict(conninfo).items())
