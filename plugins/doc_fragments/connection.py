# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options every pgha.cluster PostgreSQL module accepts.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server.
      - Empty means the local Unix socket (see O(login_unix_socket)).
    type: str
    default: ''
  login_port:
    description:
      - TCP port (or socket file suffix) of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description:
      - Role used to connect.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Never logged or returned.
      - Leave empty to rely on peer authentication or a C(~/.pgpass) file.
    type: str
    default: ''
  login_db:
    description:
      - Database to connect to.
    type: str
    default: postgres
  login_unix_socket:
    description:
      - Directory of the server's Unix socket. Takes precedence over O(login_host).
    type: str
    default: ''
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 5
  ssl_mode:
    description:
      - libpq C(sslmode) for the connection.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file used to verify the server (libpq C(sslrootcert)).
    type: path
requirements:
  - psycopg >= 3.1 (C(python3-psycopg) on Debian) on the managed host
'''
