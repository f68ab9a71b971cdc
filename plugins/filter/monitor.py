# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the log of a solution's own status, polled during a drill.

``monitor_report``: when, after the fault, the solution's tooling first stopped
reporting the old primary as primary and first reported another member as
primary. The log has one line per poll: ``<epoch seconds> <member> ...``, the
members the tooling called primary at that moment (none: an empty list), or
``<epoch seconds> ?`` when the tooling did not answer: such a poll tells nothing
and is only counted (``unanswered``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.members import member_name


def _seconds(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError('monitor_report: %s %r is not a number of seconds' % (what, value))


def monitor_report(log, fault_time, old_primary):
    """``{'polls', 'unanswered', 'old_primary_dropped', 'new_primary_shown', 'new_primary'}`` (seconds after the fault)."""
    if fault_time in (None, '', 'None'):
        return {'polls': 0, 'unanswered': 0, 'old_primary_dropped': None, 'new_primary_shown': None, 'new_primary': None}
    fault = _seconds(fault_time, 'fault time')
    old = member_name(old_primary)
    report = {'polls': 0, 'unanswered': 0, 'old_primary_dropped': None, 'new_primary_shown': None, 'new_primary': None}
    for line in str(log or '').splitlines():
        fields = line.split()
        if not fields:
            continue
        at = _seconds(fields[0], 'poll time')
        if at < fault:
            continue
        report['polls'] += 1
        if fields[1:] == ['?']:
            report['unanswered'] += 1
            continue
        names = [member_name(name) for name in fields[1:]]
        if report['old_primary_dropped'] is None and old not in names:
            report['old_primary_dropped'] = round(at - fault, 2)
        others = [name for name in names if name != old]
        if report['new_primary_shown'] is None and others:
            report['new_primary_shown'] = round(at - fault, 2)
            report['new_primary'] = others[0]
    return report


class FilterModule(object):
    def filters(self):
        return {'monitor_report': monitor_report}
