# -*- coding: utf-8 -*-
# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: podman_nsenter
short_description: Run tasks in a local podman container by entering its namespaces, with pipelining
version_added: 0.1.0
description:
  - Runs each command in the namespaces (mount, UTS, IPC, network, PID) of a podman container on the
    controller with C(nsenter), one process per command instead of a C(podman exec).
  - Supports pipelining, so a module runs in one command with its code on standard input, without a
    temporary file to copy and remove. Together that makes a task several times cheaper than through
    C(containers.podman.podman); it is what the collection's lab and Molecule scenarios use.
  - The container's main process is looked up once per task, so a container restarted by a fault
    drill is found again. A container that is not running makes the host unreachable.
author: pgha.cluster contributors (@pgha)
options:
  remote_addr:
    description:
      - Name or ID of the container.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_nsenter_container
  podman_executable:
    description:
      - The podman command on the controller.
    type: str
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description:
      - Run modules with their code on standard input instead of copying them first.
    type: boolean
    default: true
    vars:
      - name: ansible_pipelining
    env:
      - name: ANSIBLE_PIPELINING
notes:
  - Needs root on the controller (the lab runs rootful podman) and C(nsenter) from util-linux.
  - The remote user is always root; C(become) works with methods that need no password, such as
    C(sudo) for another user.
"""

import json
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

NAMESPACES = ('--mount', '--uts', '--ipc', '--net', '--pid')


class Connection(ConnectionBase):
    """Commands and files through the namespaces of a running podman container."""

    transport = 'pgha.cluster.podman_nsenter'
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._container = None
        self._pid = None

    def _container_pid(self, container):
        podman = self.get_option('podman_executable')
        if not shutil.which(podman):
            raise AnsibleError('podman_nsenter: %s not found on the controller' % podman)
        result = subprocess.run([podman, 'container', 'inspect', container], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, check=False)
        if result.returncode != 0:
            raise AnsibleConnectionFailure('container %s not found: %s'
                                           % (container, to_text(result.stderr).strip()))
        state = json.loads(result.stdout)[0].get('State', {})
        # A paused container keeps its PID: nsenter still enters it, and what runs there
        # behaves as on a hung host, which is what the freeze drills want to see.
        if not state.get('Pid'):
            raise AnsibleConnectionFailure('container %s is not running (%s)'
                                           % (container, state.get('Status', 'unknown state')))
        return int(state['Pid'])

    def _connect(self):
        if not self._connected:
            self._container = self.get_option('remote_addr')
            self._play_context.remote_user = 'root'
            self._pid = self._container_pid(self._container)
            display.vvv(u'ENTER CONTAINER %s (PID %d)' % (self._container, self._pid), host=self._container)
            self._connected = True
        return self

    def _run(self, argv, in_data=None):
        command = ['nsenter', '--target', str(self._pid)] + list(NAMESPACES) + ['--'] + argv
        display.vvv(u'EXEC %s' % to_text(' '.join(command[-1:])), host=self._container)
        process = subprocess.Popen([to_bytes(arg, errors='surrogate_or_strict') for arg in command],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = process.communicate(in_data)
        return process.returncode, stdout, stderr

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if sudoable and self.become and self.become.expect_prompt():
            raise AnsibleError('podman_nsenter: become with a password prompt is not supported; '
                               'the container is entered as root')
        executable = self._play_context.executable or '/bin/sh'
        return self._run([executable, '-c', to_text(cmd, errors='surrogate_or_strict')], in_data)

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv(u'PUT %s TO %s' % (in_path, out_path), host=self._container)
        try:
            with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as source:
                data = source.read()
        except IOError as error:
            raise AnsibleError('cannot read %s: %s' % (in_path, to_native(error)))
        # The path travels as an argument, never through the shell's parser.
        rc, unused, stderr = self._run(['/bin/sh', '-c', 'cat > "$1"', 'put_file', out_path], data)
        if rc != 0:
            raise AnsibleError('failed to write %s in %s: %s' % (out_path, self._container, to_text(stderr)))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv(u'FETCH %s TO %s' % (in_path, out_path), host=self._container)
        rc, data, stderr = self._run(['cat', '--', in_path])
        if rc != 0:
            raise AnsibleError('failed to read %s in %s: %s' % (in_path, self._container, to_text(stderr)))
        try:
            with open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb') as target:
                target.write(data)
        except IOError as error:
            raise AnsibleError('cannot write %s: %s' % (out_path, to_native(error)))

    def close(self):
        self._connected = False
        self._pid = None
