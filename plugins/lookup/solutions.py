# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: solutions
author: pgha.cluster contributors (@pgha)
version_added: "0.2.0"
short_description: The HA solutions this collection knows, read from their descriptors
description:
  - Reads every descriptor C(playbooks/vars/solutions/<name>.yml) of the collection and returns its C(pgha_solution)
    mapping, sorted by name.
  - The list of valid C(ha) values is the names of the deployable ones; nothing else lists them.
  - Values are returned as written in the files (Jinja expressions in them are not evaluated); a play that needs them
    evaluated loads the one descriptor with C(vars_files).
options:
  _terms:
    description: Names of the solutions to return; none means all.
    type: list
    elements: str
    required: false
  deployable:
    description: Only the solutions the collection deploys (V(true)), only the others (V(false)), or all when omitted.
    type: bool
  directory:
    description: Where the descriptors are; defaults to the collection's own C(playbooks/vars/solutions).
    type: path
'''

EXAMPLES = r'''
- name: Stop on an unknown solution, listing the valid ones
  ansible.builtin.assert:
    that: ha in query('pgha.cluster.solutions', deployable=true) | map(attribute='name')
'''

RETURN = r'''
_raw:
  description: One descriptor (the C(pgha_solution) mapping) per solution.
  type: list
  elements: dict
'''

import glob
import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core itself needs PyYAML
    yaml = None

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIRECTORY = os.path.join(COLLECTION_ROOT, 'playbooks', 'vars', 'solutions')


def load_descriptors(directory=DEFAULT_DIRECTORY):
    """Every descriptor in ``directory`` as {name: mapping}; the file name must match its ``name``."""
    descriptors = {}
    for path in sorted(glob.glob(os.path.join(directory, '*.yml'))):
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
        descriptor = data.get('pgha_solution')
        name = os.path.splitext(os.path.basename(path))[0]
        if not isinstance(descriptor, dict):
            raise AnsibleLookupError('%s has no pgha_solution mapping' % path)
        if descriptor.get('name') != name:
            raise AnsibleLookupError('%s: pgha_solution.name is %r, the file name says %r' % (path, descriptor.get('name'), name))
        descriptors[name] = descriptor
    return descriptors


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        directory = self.get_option('directory') or DEFAULT_DIRECTORY
        deployable = self.get_option('deployable')
        try:
            descriptors = load_descriptors(directory)
        except (OSError, yaml.YAMLError) as error:
            raise AnsibleLookupError('cannot read the solution descriptors in %s: %s' % (directory, to_native(error)))
        unknown = [term for term in terms if term not in descriptors]
        if unknown:
            raise AnsibleLookupError('unknown solution(s) %s; known: %s' % (', '.join(unknown), ', '.join(descriptors)))
        names = terms or list(descriptors)
        return [descriptors[name] for name in names
                if deployable is None or bool(descriptors[name].get('deployable')) == deployable]
