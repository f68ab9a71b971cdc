# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the roles, drills and status views share, defined once.

- ``lsn_to_int``: a PostgreSQL LSN (``16/B374D848``) as an integer, so that
  WAL positions compare with ``<``/``>``.
- ``member_address``: the address other members use to reach a host.
- ``member_name``: the ``application_name``/slot name of a member.
- ``exporter_url``: where Prometheus scrapes a member's postgres_exporter (the
  postgresql role's ``postgresql_exporter_*`` variables).
- ``file_in_place``: whether a file that ``find`` listed (with checksums) already
  has a given content, owner, group and mode, so a copy of it can be skipped.
- ``dpkg_installed``: the installed packages among the lines of
  ``dpkg-query --show --showformat '${Package} ${db:Status-Abbrev}\n'``.
- ``pgpass_entry``: one line of a libpq password file (or of Pgpool-II's
  pcppass) from its fields, escaped as the modules escape them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.pgha.cluster.plugins.module_utils.pgpass import pgpass_escape

# application_name and slot names: lower case, [a-z0-9_] only, 63 bytes at most
# (NAMEDATALEN - 1); a replication slot name allows nothing else.
_NAME_MAX = 63
_NOT_NAME_CHAR = re.compile(r'[^a-z0-9_]')


def lsn_to_int(lsn):
    """``'16/B374D848'`` -> ``0x16B374D848``; raises on anything else."""
    if isinstance(lsn, int) and not isinstance(lsn, bool):
        return lsn
    text = str(lsn).strip()
    high, sep, low = text.partition('/')
    if not sep or not high or not low:
        raise AnsibleFilterError("lsn_to_int: '%s' is not a PostgreSQL LSN (expected hex/hex, e.g. 0/3000060)" % text)
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise AnsibleFilterError("lsn_to_int: '%s' is not a PostgreSQL LSN (expected hex/hex, e.g. 0/3000060)" % text)


def _is_ip_literal(value):
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def member_address(host_vars, address_var=None, default=None, fallback_to_name=False):
    """Where the other members reach this host.

    In order: the role's explicit address variable (``address_var``, e.g.
    ``patroni_address``), ``ansible_host`` when it is an IP address (a name
    there may only resolve on the controller), the host's default IPv4 address
    from its facts, then ``default``, or with ``fallback_to_name`` the
    inventory name (a host that is down answers nothing, but its name still
    identifies it). Without any of them the filter fails and names the
    variable to set.
    """
    if address_var:
        explicit = host_vars.get(address_var)
        if explicit:
            return str(explicit)
    ansible_host = host_vars.get('ansible_host') or ''
    if ansible_host and _is_ip_literal(ansible_host):
        return str(ansible_host)
    facts = host_vars.get('ansible_facts') or {}
    ipv4 = (facts.get('default_ipv4') or {}).get('address')
    if ipv4:
        return str(ipv4)
    if default is not None:
        return str(default)
    if fallback_to_name and host_vars.get('inventory_hostname'):
        return str(host_vars.get('inventory_hostname'))
    raise AnsibleFilterError(
        'member_address: no address for host %s: set %s, set ansible_host to an IP address, or gather its network facts'
        % (host_vars.get('inventory_hostname', '?'), address_var or 'an address variable'))


def member_name(inventory_name):
    """``'DB-1.example'`` -> ``'db_1_example'``: a valid application_name and slot name."""
    return _NOT_NAME_CHAR.sub('_', str(inventory_name).lower())[:_NAME_MAX]


# Addresses that mean "every interface" to a listening socket: not one to connect to.
_WILDCARDS = ('0.0.0.0', '::', '[::]', '*')


def exporter_url(host_vars, default_port=9187):
    """``http://<address>:<port>/metrics`` of a member's postgres_exporter, or ``''``
    when its ``postgresql_exporter_enabled`` is not true.

    The address is the member's ``postgresql_exporter_listen_address`` unless that
    is a wildcard (``0.0.0.0``, ``::``) or unset; then the member's address as the
    postgresql role works it out (``postgresql_address``, an IP ``ansible_host``,
    the default IPv4 address, else the inventory name). IPv6 addresses get brackets.
    """
    try:
        enabled = boolean(host_vars.get('postgresql_exporter_enabled') or False, strict=True)
    except TypeError:
        raise AnsibleFilterError('exporter_url: postgresql_exporter_enabled of host %s is not a boolean'
                                 % host_vars.get('inventory_hostname', '?'))
    if not enabled:
        return ''
    address = str(host_vars.get('postgresql_exporter_listen_address') or '').strip()
    if not address or address in _WILDCARDS:
        address = member_address(host_vars, 'postgresql_address', fallback_to_name=True)
    if ':' in address and not address.startswith('['):
        address = '[%s]' % address
    port = host_vars.get('postgresql_exporter_port') or default_port
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise AnsibleFilterError('exporter_url: postgresql_exporter_port of host %s is not a port number: %r'
                                 % (host_vars.get('inventory_hostname', '?'), port))
    return 'http://%s:%d/metrics' % (address, port)


def file_in_place(found_files, path, content, owner, group, mode):
    """True when ``found_files`` (``find``'s ``files``, ``get_checksum: true``) has ``path`` with this content
    (its SHA-1, as ``find`` computes it), owner, group and mode."""
    if content is None:
        return False
    if not isinstance(content, bytes):
        content = str(content).encode('utf-8')
    checksum = hashlib.sha1(content).hexdigest()  # nosec - find's checksum, not a security measure
    for found in found_files or []:
        if found.get('path') == path:
            return (found.get('checksum') == checksum and found.get('pw_name') == owner
                    and found.get('gr_name') == group and found.get('mode') == mode)
    return False


def dpkg_installed(lines):
    """Names from ``'<package> <status abbreviation>'`` lines whose status is ``ii`` (installed, no error)."""
    installed = []
    for line in lines or []:
        fields = str(line).split()
        if len(fields) >= 2 and fields[1] == 'ii':
            installed.append(fields[0])
    return installed


def pgpass_entry(fields):
    """``['db1', 5432, '*', 'repmgr', 'a:b']`` -> ``'db1:5432:*:repmgr:a\\:b'``.

    Backslash and colon are escaped in every field, as libpq and Pgpool-II's
    pcppass reader expect; a password may contain either.
    """
    if not isinstance(fields, (list, tuple)):
        raise AnsibleFilterError('pgpass_entry: expects a list of fields, got %r' % type(fields).__name__)
    if len(fields) not in (4, 5):
        raise AnsibleFilterError('pgpass_entry: a password file line has 5 fields (4 in a pcppass), got %d'
                                 % len(fields))
    if any(field is None for field in fields):
        raise AnsibleFilterError('pgpass_entry: a field is undefined (None)')
    return ':'.join(pgpass_escape(field) for field in fields)


class FilterModule(object):
    def filters(self):
        return {
            'lsn_to_int': lsn_to_int,
            'member_address': member_address,
            'member_name': member_name,
            'exporter_url': exporter_url,
            'file_in_place': file_in_place,
            'dpkg_installed': dpkg_installed,
            'pgpass_entry': pgpass_entry,
        }
