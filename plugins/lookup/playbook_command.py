# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: playbook_command
author: pgha.cluster contributors (@pgha)
version_added: "0.2.0"
short_description: The command line of a nested ansible-playbook run that inherits this run's settings
description:
  - Drills and the comparison run some steps as separate C(ansible-playbook) processes, so that each step is timed and
    fails as a user would see it. This lookup builds that command line once for all of them.
  - The nested run gets this run's inventory sources, vault identities and password files, become settings,
    remote user, private key, connection, forks, check and diff modes, and its extra variables, followed by
    O(extra_vars) (later C(-e) options win).
  - It also gets this run's configuration file and collection paths (C(ANSIBLE_CONFIG), C(ANSIBLE_COLLECTIONS_PATH)
    through C(env)) - C(ansible.builtin.command) runs it in the playbook's directory, where the C(ansible.cfg) of
    the checkout is not found, and a nested run would otherwise load another copy of the collection (for example
    one installed in C(~/.ansible/collections)).
  - An interactive prompt (C(--ask-vault-password), C(--ask-become-pass)) cannot be forwarded to a process without a
    terminal; the lookup fails and says to use a password file instead.
options:
  _terms:
    description: The playbook to run (an absolute path, or relative to the current directory).
    type: list
    elements: path
    required: true
  extra_vars:
    description: Extra variables for the nested run, each a mapping (passed as JSON) or a string as C(-e) takes it.
    type: list
    elements: raw
    default: []
'''

EXAMPLES = r'''
- name: Deploy the solution as a separate, timed run
  ansible.builtin.command:
    argv: "{{ query('pgha.cluster.playbook_command', playbook_dir ~ '/site.yml', extra_vars=[{'ha': 'patroni'}]) }}"
  changed_when: true
'''

RETURN = r'''
_raw:
  description: The argument vector, to be given to C(ansible.builtin.command) as C(argv).
  type: list
  elements: str
'''

import json
import os
import shutil
import sys

from collections.abc import Mapping

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def _ansible_playbook():
    beside = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return beside if os.path.exists(beside) else (shutil.which('ansible-playbook') or 'ansible-playbook')


def _absolute_file_reference(value):
    """``@vars.yml`` relative to this run's directory still names the same file from a nested run."""
    if isinstance(value, str) and value.startswith('@'):
        return '@' + os.path.abspath(value[1:])
    return value


def forwarded_options(cli_args, inventory_sources=None):
    """This run's command-line settings, as options for another ansible-playbook."""
    if cli_args.get('ask_vault_pass') or cli_args.get('ask_pass') or cli_args.get('become_ask_pass'):
        raise AnsibleLookupError(
            'a nested ansible-playbook run cannot answer a password prompt: give the vault password with '
            '--vault-password-file or --vault-id, and become/connection passwords through the inventory or Vault')
    argv = []
    for source in inventory_sources or cli_args.get('inventory') or ():
        argv += ['-i', os.path.abspath(source) if os.path.exists(source) else source]
    for vault_id in cli_args.get('vault_ids') or ():
        argv += ['--vault-id', vault_id]
    for password_file in cli_args.get('vault_password_files') or ():
        argv += ['--vault-password-file', os.path.abspath(password_file)]
    if cli_args.get('become'):
        argv.append('--become')
    for option, key in (('--become-method', 'become_method'), ('--become-user', 'become_user'), ('--user', 'remote_user'),
                        ('--private-key', 'private_key_file'), ('--connection', 'connection'), ('--forks', 'forks')):
        value = cli_args.get(key)
        if value not in (None, ''):
            argv += [option, str(value)]
    if cli_args.get('check'):
        argv.append('--check')
    if cli_args.get('diff'):
        argv.append('--diff')
    for extra in cli_args.get('extra_vars') or ():
        argv += ['-e', _absolute_file_reference(extra)]
    return argv


def _plain(value):
    """Plain dicts, lists and strings: the template engine's lazy containers are walked through their
    accessors, so every value is rendered before it is serialised."""
    if isinstance(value, Mapping):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


def inherited_environment(config_file=None, collection_paths=()):
    """``env`` and the settings that tell a nested run which ansible.cfg and which collections to load."""
    settings = []
    if config_file:
        settings.append('ANSIBLE_CONFIG=%s' % os.path.abspath(config_file))
    if collection_paths:
        settings.append('ANSIBLE_COLLECTIONS_PATH=%s' % os.pathsep.join(os.path.abspath(path) for path in collection_paths))
    return [shutil.which('env') or '/usr/bin/env'] + settings if settings else []


def playbook_command(playbook, cli_args, inventory_sources=None, extra_vars=(), config_file=None, collection_paths=()):
    argv = inherited_environment(config_file, collection_paths)
    argv += [_ansible_playbook(), os.path.abspath(playbook)] + forwarded_options(cli_args, inventory_sources)
    for extra in extra_vars:
        argv += ['-e', json.dumps(extra, sort_keys=True) if isinstance(extra, dict) else str(extra)]
    return argv


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError('playbook_command takes exactly one playbook, got %d' % len(terms))
        # The inventory as this run resolved it (absolute paths), whatever the command line or ansible.cfg said.
        sources = (variables or {}).get('ansible_inventory_sources')
        extra_vars = self.get_option('extra_vars') or []
        extra_vars = [_plain(extra) if isinstance(extra, Mapping) else str(extra) for extra in extra_vars]
        return playbook_command(terms[0], dict(context.CLIARGS), sources, extra_vars,
                                config_file=C.CONFIG_FILE, collection_paths=C.COLLECTIONS_PATHS)
