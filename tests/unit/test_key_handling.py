"""Private keys written by the roles: mode 0600, and never shown by --diff.

Reads each role's task files: every task that creates or copies a key file
(openssl_privatekey, or a copy/template whose source or destination is a .key)
must set diff: false and mode 0600. A copy looping over files takes its mode
from the loop item, so every item that names a key must say 0600.
"""
import glob
import json
import os

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ['postgresql', 'etcd', 'patroni']
KEY_MODULES = ('community.crypto.openssl_privatekey',)
FILE_MODULES = ('ansible.builtin.copy', 'ansible.builtin.template')


def tasks_of(role):
    for path in sorted(glob.glob(os.path.join(REPO, 'roles', role, 'tasks', '*.yml'))):
        with open(path) as handle:
            yield from _flatten(yaml.safe_load(handle) or [], os.path.basename(path))


def _flatten(tasks, where):
    for task in tasks:
        for section in ('block', 'rescue', 'always'):
            yield from _flatten(task.get(section, []), where)
        yield where, task


def key_tasks(role):
    found = []
    for where, task in tasks_of(role):
        module = next((name for name in KEY_MODULES + FILE_MODULES if name in task), None)
        if module in KEY_MODULES or (module in FILE_MODULES and _writes_a_key(task, task[module])):
            found.append((where, task, task[module]))
    return found


def _writes_a_key(task, args):
    """A copy or template whose source, destination or loop names a .key file (a file's
    content that merely mentions a key's path, as a settings file may, writes no key)."""
    named = {key: value for key, value in args.items() if key != 'content'}
    return '.key' in json.dumps([named, task.get('loop'), task.get('vars')])


@pytest.mark.parametrize('role', ROLES)
def test_key_tasks_hide_their_diff_and_write_mode_0600(role):
    tasks = key_tasks(role)
    assert tasks, 'no key task found: the test would check nothing'
    for where, task, args in tasks:
        assert task.get('diff') is False, '%s: %s lacks diff: false' % (where, task['name'])
        for mode in key_modes(task, args):
            assert mode == '0600', '%s: %s writes a key with mode %s' % (where, task['name'], mode)


def key_modes(task, args):
    """The mode of every key a task writes: its own, or each key item's when the mode comes from the loop."""
    if args.get('mode') != '{{ item.mode }}':
        return [args.get('mode')]
    lists = [task['loop']] if isinstance(task.get('loop'), list) else []
    lists += [value for value in task.get('vars', {}).values() if isinstance(value, list)]
    items = [item for value in lists for item in value
             if isinstance(item, dict) and str(item.get('dest', '')).endswith('.key')]
    assert items, '%s loops over files but names no key item' % task['name']
    return [item.get('mode') for item in items]
