"""Private keys and passwords written by the roles: never shown, files closed to others.

Reads each role's task files: every task that creates or copies a key file
(openssl_privatekey, or a copy/template whose source or destination is a .key)
must set diff: false and mode 0600. A copy looping over files takes its mode
from the loop item, so every item that names a key must say 0600.

Every copy or template that writes a password (a *_password variable in its
arguments or in its template) must hide it: no_log: true when the password is in
the task's arguments (they are shown with -vvv), else no_log: true or diff: false;
and the file is 0600 or 0640. A pgha.cluster.config_files entry always carries its
content (a rendered template too) in the task's arguments, so a task with an entry
that writes a password needs no_log: true.
"""
import glob
import json
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ['postgresql', 'etcd', 'patroni']
KEY_MODULES = ('community.crypto.openssl_privatekey',)
FILE_MODULES = ('ansible.builtin.copy', 'ansible.builtin.template')
CONFIG_FILES = 'pgha.cluster.config_files'


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


ALL_ROLES = sorted(os.listdir(os.path.join(REPO, 'roles')))
PASSWORD = re.compile(r'\{\{[^}]*\b\w+_password\b')


def password_pattern(role):
    """A *_password variable, or a variable of the role's vars/defaults whose value uses one."""
    names = set()
    for part in ('vars', 'defaults'):
        path = os.path.join(REPO, 'roles', role, part, 'main.yml')
        if os.path.isfile(path):
            with open(path) as handle:
                values = yaml.safe_load(handle) or {}
            names.update(name for name, value in values.items() if PASSWORD.search(json.dumps(value)))
    # in an expression ({{ }}) or a statement ({% for user in users %})
    return re.compile(r'\{[{%%][^}]*\b(%s)\b' % '|'.join([r'\w+_password'] + sorted(map(re.escape, names))))


TEMPLATE_LOOKUP = re.compile(r"lookup\('ansible\.builtin\.template', '([^']+)'")


def config_file_entries(task):
    """The file entries of a config_files task: its literal list, and the entries its vars define
    (a task that picks its files with an expression lists them in vars)."""
    args = task['pgha.cluster.config_files']
    candidates = list(args.get('files')) if isinstance(args.get('files'), list) else []
    for value in task.get('vars', {}).values():
        candidates += value if isinstance(value, list) else [value]
    return [entry for entry in candidates if isinstance(entry, dict) and 'path' in entry and 'content' in entry]


def _renders_a_password(role, text, pattern):
    for name in TEMPLATE_LOOKUP.findall(text):
        source = os.path.join(REPO, 'roles', role, 'templates', name)
        if os.path.isfile(source):
            with open(source) as handle:
                if pattern.search(handle.read()):
                    return True
    return bool(pattern.search(text))


def password_tasks(role):
    """(file, task, module arguments, password in the arguments) of every task writing a password to a file;
    for config_files, one per file entry that writes one (its content is always in the arguments)."""
    pattern = password_pattern(role)
    found = []
    for where, task in tasks_of(role):
        if CONFIG_FILES in task:
            found += [(where, task, entry, True) for entry in config_file_entries(task)
                      if _renders_a_password(role, json.dumps(entry), pattern)]
            continue
        module = next((name for name in FILE_MODULES if name in task), None)
        if module is None:
            continue
        args = task[module]
        in_args = bool(pattern.search(json.dumps(args)))
        in_template = False
        source = os.path.join(REPO, 'roles', role, 'templates', str(args.get('src', '')))
        if module == 'ansible.builtin.template' and '{{' not in source and os.path.isfile(source):
            with open(source) as handle:
                in_template = bool(pattern.search(handle.read()))
        if in_args or in_template:
            found.append((where, task, args, in_args))
    return found


@pytest.mark.parametrize('role', ALL_ROLES)
def test_tasks_writing_a_password_hide_it_and_close_the_file(role):
    for where, task, args, in_args in password_tasks(role):
        if in_args:
            assert task.get('no_log') is True, '%s: %s has a password in its arguments without no_log: true' % (
                where, task['name'])
        assert task.get('no_log') is True or task.get('diff') is False, '%s: %s would show the password with --diff' % (
            where, task['name'])
        assert args.get('mode') in ('0600', '0640'), '%s: %s writes a password with mode %s' % (
            where, task['name'], args.get('mode'))


def test_every_password_file_written_through_config_files_is_found():
    """The scan above must see the entries of config_files tasks, or it would check nothing there."""
    found = {(role, entry['path']) for role in ALL_ROLES for where, task, entry, in_args in password_tasks(role)
             if CONFIG_FILES in task}
    assert found >= {
        ('paf', '{{ paf_passfile }}'), ('patroni', '{{ _patroni_config_file }}'),
        ('pgpool', '{{ pgpool_config_directory }}/pool_passwd'), ('pgpool', '{{ pgpool_config_directory }}/pcp.conf'),
        ('pgpool', '{{ pgpool_passfile }}'), ('postgresql', '{{ _postgresql_exporter_environment_file }}'),
        ('repmgr', '{{ repmgr_passfile }}'), ('streaming', '{{ _streaming_fence_passfile }}')}, found


def test_the_exporter_settings_are_found_and_hidden():
    """The postgres_exporter's settings hold the monitoring password: the check above must see that task."""
    tasks = [(task, args) for where, task, args, in_args in password_tasks('postgresql') if where == 'exporter.yml']
    assert len(tasks) == 1, tasks
    task, entry = tasks[0]
    assert task.get('no_log') is True and entry.get('diff') is False
    assert (entry.get('owner', 'root'), entry['group'], entry['mode']) == ('root', 'prometheus', '0640')
