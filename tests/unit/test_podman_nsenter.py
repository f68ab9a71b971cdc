"""The podman_nsenter connection, against a stand-in podman that names this test's own process.

nsenter into the test's own namespaces is a real nsenter run (root, as on the lab's controller),
so commands, pipelined module input and file transfers go the same way as into a container.
"""
import json
import os
import stat

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext

from ansible_collections.pgha.cluster.plugins.connection import podman_nsenter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='nsenter needs root')


def stand_in_podman(tmp_path, pid, status='running'):
    """A podman whose `container inspect` answers with the given main PID."""
    answer = json.dumps([{'State': {'Pid': pid, 'Status': status}}])
    script = tmp_path / 'podman'
    script.write_text('#!/bin/sh\n'
                      'if [ "$1 $2 $3" = "container inspect known" ]; then\n'
                      "  cat <<'EOF'\n%s\nEOF\n"
                      'else echo "no such container: $3" >&2; exit 125; fi\n' % answer)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def connect(podman, container='known'):
    # What the plugin loader does with the options documented in the plugin.
    connection = podman_nsenter.Connection(PlayContext(), None)
    connection._load_name = 'pgha.cluster.podman_nsenter'
    C.config.initialize_plugin_configuration_definitions(
        'connection', connection._load_name, yaml.safe_load(podman_nsenter.DOCUMENTATION)['options'])
    connection.set_options(direct={'remote_addr': container, 'podman_executable': podman})
    connection._connect()
    return connection


def test_commands_run_and_pipelined_input_arrives(tmp_path):
    connection = connect(stand_in_podman(tmp_path, os.getpid()))
    assert connection.is_pipelining_enabled()
    rc, out, err = connection.exec_command('echo "$((6 * 7))"')
    assert (rc, out, err) == (0, b'42\n', b'')
    # What pipelining does with a module: its code on standard input.
    rc, out, err = connection.exec_command('/usr/bin/env python3', in_data=b'print("from stdin")\n')
    assert (rc, out, err) == (0, b'from stdin\n', b'')
    assert connection.exec_command('exit 3')[0] == 3


def test_files_go_both_ways_byte_for_byte(tmp_path):
    connection = connect(stand_in_podman(tmp_path, os.getpid()))
    payload = bytes(range(256)) * 64
    source = tmp_path / 'source'
    source.write_bytes(payload)
    # A name the shell would split or expand must arrive as it is.
    target = tmp_path / 'a target $(touch pwned) * name'
    connection.put_file(str(source), str(target))
    assert target.read_bytes() == payload
    assert not (tmp_path / 'pwned').exists()
    back = tmp_path / 'back'
    connection.fetch_file(str(target), str(back))
    assert back.read_bytes() == payload


def test_a_stopped_container_is_unreachable(tmp_path):
    with pytest.raises(AnsibleConnectionFailure, match='known is not running'):
        connect(stand_in_podman(tmp_path, 0, status='exited'))


def test_a_missing_container_is_unreachable(tmp_path):
    with pytest.raises(AnsibleConnectionFailure, match='container gone not found'):
        connect(stand_in_podman(tmp_path, os.getpid()), container='gone')
