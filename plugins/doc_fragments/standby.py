# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of the modules that make a data directory a standby (standby_clone, rewind);
    # their argument spec is module_utils.standby.standby_argument_spec(). The upstream is the
    # primary of standby_clone or the source of rewind.
    DOCUMENTATION = r'''
options:
  data_directory:
    description:
      - Data directory of the standby to create, check or rejoin.
    type: path
    required: true
  bin_dir:
    description:
      - Directory of the PostgreSQL server binaries (C(pg_basebackup), C(pg_rewind), C(pg_ctl), C(pg_controldata),
        C(postgres)).
      - Found automatically when omitted - the Debian and RPM layouts of the upstream's or the data directory's
        major version, then E(PATH).
    type: path
  replication_user:
    description:
      - Role with the C(REPLICATION) attribute the standby streams with (written into C(primary_conninfo));
        M(pgha.cluster.standby_clone) also clones with it.
    type: str
    default: replicator
  replication_password:
    description:
      - Password of O(replication_user). Never logged, put on a command line or returned.
      - Written to O(passfile) for the standby. Omit it when authentication does not need a password (for example
        certificates) or when the password file is managed elsewhere.
    type: str
  passfile:
    description:
      - Password file (libpq pgpass format) referenced by C(passfile=) in C(primary_conninfo). The module keeps one
        C(host:port:*:user:password) entry in it, with mode 0600, owned by O(os_user).
      - Defaults to C(.pgpass_<name>) in the parent directory of O(data_directory) (for example
        C(/var/lib/postgresql/15/.pgpass_main)) when O(replication_password) is set; outside the data directory so
        that backups, rewinds and moved-aside copies never carry it.
    type: path
  application_name:
    description:
      - C(application_name) of the standby, as shown in C(pg_stat_replication) and used by
        C(synchronous_standby_names).
      - Defaults to the short host name.
    type: str
  slot_name:
    description:
      - Physical replication slot on the upstream, written as C(primary_slot_name) (M(pgha.cluster.standby_clone)
        also clones through it). On PostgreSQL 15 and later the module checks that it exists, unless it is to
        create it.
      - When omitted, any C(primary_slot_name) is removed from the standby configuration.
    type: str
  settings:
    description:
      - Extra server settings written to C(postgresql.auto.conf) of the standby and kept there, for example a
        node-specific C(port). The configuration files inside the data directory come from the upstream
        (C(pg_basebackup) and C(pg_rewind) copy them), so node-specific settings kept there must be given here.
    type: dict
    default: {}
  os_user:
    description:
      - Operating system account that owns the data directory and runs the server. When the module runs as root,
        the PostgreSQL binaries run as this user and every file written is owned by it.
    type: str
    default: postgres
  start:
    description:
      - Start the standby with C(pg_ctl start) when it is not running once it is a standby.
      - Leave V(false) when a service manager (systemd) starts the server.
    type: bool
    default: false
  start_log_file:
    description:
      - Server log file passed to C(pg_ctl start -l) when O(start=true).
      - Defaults to C(<data_directory>.log).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for connections to the upstream.
    type: int
    default: 10
'''
