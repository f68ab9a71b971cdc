#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: config_files
short_description: Put a set of directories and small files in place in one module run
description:
  - Makes each listed directory exist and each listed file hold the given content, with the given owner,
    group and mode, each listed symbolic link point where it should, and removes the files listed as absent, in
    one module run on the target.
  - A run that finds everything in place costs one round trip, where C(ansible.builtin.template) and
    C(ansible.builtin.copy) cost two per file (a stat, then the file module); the roles use it for their
    configuration files, units and helper scripts.
  - Every entry is checked before anything changes. An entry with a relative path, a path listed twice, an
    unknown owner or group, a file whose directory neither exists nor is listed, a path of the wrong kind
    (a directory where a file is asked for, or the reverse, or a symbolic link), or new content that its
    O(files[].validate) command rejects makes the module fail with every problem named and nothing changed.
  - New content is written to a temporary file in the same directory, given its owner and mode, and renamed
    over the old file, so a reader sees the old file or the new one, never a part of either.
author:
  - pgha.cluster contributors (@pgha)
options:
  directories:
    description:
      - Directories to create when missing and to give the owner, group and mode listed. A directory's
        parent must exist or be listed before it.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      owner:
        description: Owning user's name.
        type: str
        default: root
      group:
        description: Owning group's name.
        type: str
        default: root
      mode:
        description: Permissions as an octal string, such as V("0755").
        type: str
        required: true
  files:
    description:
      - Files to hold exactly O(files[].content), with the owner, group and mode listed.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path. Its directory must exist or be listed in O(directories).
        type: path
        required: true
      content:
        description:
          - The whole content, as text (written as UTF-8). Render a template with
            C(lookup('ansible.builtin.template', ...)) and read a role's file with
            C(lookup('ansible.builtin.file', ..., rstrip=false)).
        type: str
        required: true
      owner:
        description: Owning user's name.
        type: str
        default: root
      group:
        description: Owning group's name.
        type: str
        default: root
      mode:
        description: Permissions as an octal string, such as V("0644").
        type: str
        required: true
      validate:
        description:
          - A command that checks new content before anything is written; C(%s) stands for a temporary
            file that holds it. Runs only when the content differs, and not in check mode (the checking
            program may not be installed yet).
        type: str
      diff:
        description:
          - When V(false), diff mode says that the content changes but does not show it (a file with secrets).
        type: bool
        default: true
  links:
    description:
      - Symbolic links to create, or to point at O(links[].src) when they point elsewhere. A path that exists and
        is not a symbolic link is refused.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the link. Its directory must exist or be listed in O(directories).
        type: path
        required: true
      src:
        description: What the link points to (it need not exist yet).
        type: path
        required: true
  absent:
    description:
      - Files (or symbolic links) to remove when present, such as what an earlier version of a role installed.
        A directory listed here is refused.
    type: list
    elements: path
    default: []
notes:
  - Supports check mode and diff mode. In check mode nothing is written and no O(files[].validate) command runs;
    RV(changes) lists what would change.
  - The content travels as a module argument, so write a file that holds secrets with a task that sets
    C(no_log), or C(-vvv) shows it.
  - SELinux contexts and file attributes other than owner, group and mode are not managed.
'''

EXAMPLES = r'''
- name: Write Patroni's unit and the settings of its helper
  pgha.cluster.config_files:
    directories:
      - {path: /etc/patroni, owner: root, group: postgres, mode: "0750"}
    files:
      - path: /etc/systemd/system/patroni.service
        content: "{{ lookup('ansible.builtin.template', 'patroni.service.j2') }}"
        mode: "0644"
      - path: /etc/haproxy/haproxy.cfg
        content: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
        group: haproxy
        mode: "0640"
        validate: haproxy -c -f %s
  register: written

- name: Reload systemd when the unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: "'/etc/systemd/system/patroni.service' in written.changes"
'''

RETURN = r'''
changes:
  description:
    - For every directory and file that changed (or would change, in check mode), what changed, among
      C(created), C(content), C(owner), C(group), C(mode), C(target) (a link pointed elsewhere) and C(removed). Paths already in place (or already
      absent) are not listed.
  returned: always
  type: dict
  sample: {"/etc/patroni": ["created"], "/etc/haproxy/haproxy.cfg": ["content", "mode"]}
'''

import grp
import os
import pwd
import re
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible_collections.pgha.cluster.plugins.module_utils.host import write_file_atomic

MODE_PATTERN = re.compile(r'^0?[0-7]{3,4}$')


class Pending(str):
    """A problem that an earlier task of the same run may solve (a package that creates a user or a directory):
    an error in a real run, a warning in check mode, where that task did not run."""


def _lookup_id(kind, name, problems, where):
    try:
        if kind == 'owner':
            return pwd.getpwnam(name).pw_uid
        return grp.getgrnam(name).gr_gid
    except KeyError:
        problems.append(Pending('%s: %s %r does not exist' % (where, 'user' if kind == 'owner' else 'group', name)))
        return None


def _parse_mode(value, problems, where):
    if not MODE_PATTERN.match(value or ''):
        problems.append('%s: mode %r is not an octal string such as "0644"' % (where, value))
        return None
    return int(value, 8)


def _absolute(path, problems):
    """The normalised path, or None (and a problem) when it is not absolute."""
    if not os.path.isabs(path):
        problems.append('%s: the path is not absolute' % path)
        return None
    return os.path.normpath(path)


def _check_entry(entry, kind, problems):
    """Resolve owner, group and mode and look at what is on disk now; record problems."""
    where = entry['path']
    path = _absolute(where, problems)
    if path is None:
        return None
    wanted = {
        'path': path,
        'uid': _lookup_id('owner', entry['owner'], problems, where),
        'gid': _lookup_id('group', entry['group'], problems, where),
        'mode': _parse_mode(entry['mode'], problems, where),
        'owner': entry['owner'], 'group': entry['group'], 'mode_text': entry['mode'],
    }
    try:
        current = os.lstat(wanted['path'])
    except FileNotFoundError:
        current = None
    if current is not None:
        if stat.S_ISLNK(current.st_mode):
            problems.append('%s: is a symbolic link; list the path it points to' % where)
        elif kind == 'directory' and not stat.S_ISDIR(current.st_mode):
            problems.append('%s: exists and is not a directory' % where)
        elif kind == 'file' and not stat.S_ISREG(current.st_mode):
            problems.append('%s: exists and is not a regular file' % where)
    wanted['current'] = current
    return wanted


def _attribute_changes(wanted):
    current = wanted['current']
    if current is None:
        return ['created']
    changes = []
    if current.st_uid != wanted['uid']:
        changes.append('owner')
    if current.st_gid != wanted['gid']:
        changes.append('group')
    if stat.S_IMODE(current.st_mode) != wanted['mode']:
        changes.append('mode')
    return changes


def _describe(owner, group, mode):
    return 'owner: %s\ngroup: %s\nmode: %s\n' % (owner, group, mode)


def _name_of(kind, number):
    try:
        return pwd.getpwuid(number).pw_name if kind == 'owner' else grp.getgrgid(number).gr_name
    except KeyError:
        return str(number)


def _current_description(wanted):
    current = wanted['current']
    if current is None:
        return ''
    return _describe(_name_of('owner', current.st_uid), _name_of('group', current.st_gid),
                     '%04o' % stat.S_IMODE(current.st_mode))


def plan(module):
    """Check every entry and work out the changes; fail with every problem before any change."""
    problems = []
    directories = [_check_entry(entry, 'directory', problems) for entry in module.params['directories']]
    files = []
    for entry in module.params['files']:
        wanted = _check_entry(entry, 'file', problems)
        if wanted is not None:
            wanted.update(data=to_bytes(entry['content'], errors='surrogate_or_strict'),
                          validate=entry['validate'], show_diff=entry['diff'])
            if wanted['validate'] is not None and '%s' not in wanted['validate']:
                problems.append('%s: the validate command has no %%s for the file to check' % wanted['path'])
        files.append(wanted)
    directories = [d for d in directories if d is not None]
    files = [f for f in files if f is not None]
    links = []
    for entry in module.params['links']:
        path = _absolute(entry['path'], problems)
        if path is None:
            continue
        if os.path.lexists(path) and not os.path.islink(path):
            problems.append('%s: exists and is not a symbolic link' % path)
        current = os.readlink(path) if os.path.islink(path) else None
        changes = ['created'] if current is None else (['target'] if current != entry['src'] else [])
        links.append({'path': path, 'src': entry['src'], 'current': current, 'changes': changes})
    removals = []
    for path in module.params['absent']:
        path = _absolute(path, problems)
        if path is None:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            problems.append('%s: is a directory; only files and links are removed' % path)
        removals.append({'path': path, 'changes': ['removed'] if os.path.lexists(path) else []})

    seen = set()
    for wanted in directories + files + links + removals:
        if wanted['path'] in seen:
            problems.append('%s: listed more than once' % wanted['path'])
        seen.add(wanted['path'])
    # A directory may be made by a directory entry listed before it; files and links by any listed directory.
    listed_directories = set()
    for index, wanted in enumerate(directories + files + links):
        parent = os.path.dirname(wanted['path'])
        if parent not in listed_directories and not os.path.isdir(parent):
            problems.append(Pending('%s: its directory %s neither exists nor is listed before it' % (wanted['path'], parent)))
        if index < len(directories):
            listed_directories.add(wanted['path'])
    if module.check_mode:
        for problem in [p for p in problems if isinstance(p, Pending)]:
            module.warn('in a real run this fails unless an earlier task changes it: %s' % problem)
        problems = [p for p in problems if not isinstance(p, Pending)]
    if problems:
        module.fail_json(msg='nothing changed: ' + '; '.join(problems), changes={})

    for wanted in files:
        old = None
        if wanted['current'] is not None:
            with open(wanted['path'], 'rb') as source:
                old = source.read()
        wanted['old'] = old
        wanted['changes'] = _attribute_changes(wanted)
        if old is not None and old != wanted['data']:
            wanted['changes'].insert(0, 'content')
    for wanted in directories:
        wanted['changes'] = _attribute_changes(wanted)
    return directories, files, links, removals


def validate_new_content(module, files):
    """Run each validate command on its file's new content, in a temporary directory; fail before any change."""
    problems = []
    for wanted in files:
        if wanted['validate'] is None or not ({'created', 'content'} & set(wanted['changes'])):
            continue
        handle, temporary = tempfile.mkstemp(dir=module.tmpdir)
        with os.fdopen(handle, 'wb') as target:
            target.write(wanted['data'])
        rc, out, err = module.run_command(wanted['validate'] % temporary)
        if rc != 0:
            problems.append('%s: %r rejected the new content (exit %d): %s'
                            % (wanted['path'], wanted['validate'], rc, (err or out).strip()))
    if problems:
        module.fail_json(msg='nothing changed: ' + '; '.join(problems), changes={})


def diff_entries(directories, files, links, removals):
    diffs = [{'before_header': gone['path'], 'after_header': gone['path'], 'before': 'present\n', 'after': 'absent\n'}
             for gone in removals if gone['changes']]
    diffs += [{'before_header': link['path'], 'after_header': link['path'],
               'before': 'link to %s\n' % link['current'] if link['current'] is not None else 'absent\n',
               'after': 'link to %s\n' % link['src']} for link in links if link['changes']]
    for wanted in directories:
        if wanted['changes']:
            diffs.append({'before_header': wanted['path'], 'after_header': wanted['path'],
                          'before': _current_description(wanted) if wanted['current'] else 'absent\n',
                          'after': _describe(wanted['owner'], wanted['group'], wanted['mode_text'])})
    for wanted in files:
        if not wanted['changes']:
            continue
        before = _current_description(wanted)
        after = _describe(wanted['owner'], wanted['group'], wanted['mode_text'])
        if wanted['show_diff']:
            before += to_text(wanted['old'] or b'', errors='replace')
            after += to_text(wanted['data'], errors='replace')
        elif 'content' in wanted['changes'] or 'created' in wanted['changes']:
            before += 'content: not shown\n' if wanted['old'] is not None else ''
            after += 'content: not shown, changed\n'
        diffs.append({'before_header': wanted['path'], 'after_header': wanted['path'],
                      'before': before, 'after': after})
    return diffs


def _link_atomically(path, target):
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, '.%s.%d.link' % (name, os.getpid()))
    os.symlink(target, temporary)
    try:
        os.rename(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def apply(directories, files, links, removals):
    for gone in removals:
        if gone['changes']:
            os.unlink(gone['path'])
    for wanted in directories:
        if 'created' in wanted['changes']:
            os.mkdir(wanted['path'], 0o700)
        if wanted['changes']:
            os.chown(wanted['path'], wanted['uid'], wanted['gid'])
            os.chmod(wanted['path'], wanted['mode'])
    for wanted in files:
        if {'created', 'content'} & set(wanted['changes']):
            write_file_atomic(wanted['path'], wanted['data'], wanted['uid'], wanted['gid'], wanted['mode'])
        elif wanted['changes']:
            os.chown(wanted['path'], wanted['uid'], wanted['gid'])
            os.chmod(wanted['path'], wanted['mode'])
    for link in links:
        if link['changes']:
            _link_atomically(link['path'], link['src'])


def main():
    entry_options = dict(
        path=dict(type='path', required=True),
        owner=dict(type='str', default='root'),
        group=dict(type='str', default='root'),
        mode=dict(type='str', required=True),
    )
    file_options = dict(entry_options, content=dict(type='str', required=True),
                        validate=dict(type='str'), diff=dict(type='bool', default=True))
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type='list', elements='dict', default=[], options=entry_options),
            files=dict(type='list', elements='dict', default=[], options=file_options),
            links=dict(type='list', elements='dict', default=[],
                       options=dict(path=dict(type='path', required=True), src=dict(type='path', required=True))),
            absent=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=True,
    )
    directories, files, links, removals = plan(module)
    changes = dict((wanted['path'], wanted['changes']) for wanted in directories + files + links + removals
                   if wanted['changes'])
    result = dict(changed=bool(changes), changes=changes)
    if module._diff:
        result['diff'] = diff_entries(directories, files, links, removals)
    if changes and not module.check_mode:
        validate_new_content(module, files)
        apply(directories, files, links, removals)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
