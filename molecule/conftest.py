"""Make testinfra reach podman lab nodes directly.

Molecule hands testinfra its Ansible inventory. testinfra does not know the
containers.podman.podman connection, so it would run one ansible process per
check (seconds each). Hosts reached with that connection are switched to
testinfra's own podman backend (`podman exec`), which is what Ansible does
too, only without the overhead. Other hosts are left to the Ansible backend.
"""
import base64
import gzip
import json
import os
import shlex
import subprocess

import pytest
import testinfra
import yaml

# The connections that reach a lab container (the drills' list): testinfra then goes
# through podman into the same containers.
with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'playbooks', 'faults', 'classes.yml')) as _classes:
    PODMAN_CONNECTIONS = tuple(yaml.safe_load(_classes)['fault_lab_connections'])


def pytest_configure(config):
    option = config.option
    inventory = getattr(option, 'ansible_inventory', None)
    if getattr(option, 'connection', None) != 'ansible' or not inventory or getattr(option, 'hosts', None):
        return
    listing = subprocess.run(['ansible-inventory', '-i', inventory, '--list'],
                             check=True, capture_output=True, text=True)
    hostvars = json.loads(listing.stdout).get('_meta', {}).get('hostvars', {})
    hosts = sorted(hostvars)
    if hosts and all(hostvars[h].get('ansible_connection') in PODMAN_CONNECTIONS for h in hosts):
        option.connection = 'podman'
        option.hosts = ','.join(hosts)


@pytest.fixture(scope='session')
def lab_hosts(pytestconfig):
    """Names of every node of the scenario (they resolve as DNS names too)."""
    return [h.replace('podman://', '') for h in (pytestconfig.option.hosts or '').split(',') if h]


# The scenarios' PostgreSQL nodes and their roles, as the servers report them.
@pytest.fixture(scope='module')
def nodes(lab_hosts):
    return {name: testinfra.get_host('podman://' + name) for name in lab_hosts}


@pytest.fixture(scope='module')
def roles(nodes):
    """Each node's pg_is_in_recovery(): 'f' for a primary, 't' for a standby."""
    states = {}
    for name, node in nodes.items():
        cmd = node.run("runuser -u postgres -- psql -XAtq -c 'SELECT pg_is_in_recovery()'")
        assert cmd.rc == 0, (name, cmd.stderr)
        states[name] = cmd.stdout.strip()
    return states


@pytest.fixture(scope='module')
def primary(roles):
    primaries = [name for name, in_recovery in roles.items() if in_recovery == 'f']
    assert len(primaries) == 1, roles
    return primaries[0]


@pytest.fixture(scope='module')
def standbys(roles, primary):
    return sorted(name for name in roles if name != primary)


@pytest.fixture(scope='module')
def assert_fence_in_place(nodes):
    """A check of the shared fence (roles/primary_fence) under a unit name on every node: the
    watch running and enabled, the start check loaded by systemd as an ExecStartPre of PostgreSQL."""
    def check(unit):
        for name, node in nodes.items():
            assert node.service(unit).is_running, (name, unit)
            assert node.service(unit).is_enabled, (name, unit)
            # loaded by systemd, not only written
            start_pre = node.check_output('systemctl show -p ExecStartPre postgresql@15-main')
            assert '/usr/local/lib/%s' % unit in start_pre and 'start-check' in start_pre, (name, start_pre)
    return check


# Run on a node: its whole journal (text, plus the binary files under
# /var/log/journal, which also hold fields such as a process's command line),
# every file under /var/log and under the directories given as arguments,
# handed back gzipped and base64-encoded. The secrets to look for never leave
# the controller.
_LOG_COLLECTOR = r"""
import base64, gzip, os, subprocess, sys
parts = [subprocess.run(['journalctl', '-o', 'cat', '--no-pager'], capture_output=True, check=True).stdout]
files = 0
for top in ['/var/log'] + sys.argv[1:]:
    for root, dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as handle:
                    parts.append(handle.read())
                files += 1
sys.stdout.write('%d %d ' % (len(parts[0]), files))
sys.stdout.write(base64.b64encode(gzip.compress(b'\n'.join(parts), 1)).decode())
"""


@pytest.fixture(scope='session')
def lab_secrets():
    """Every password the scenario generated (the lab's secrets directory on the controller), by name."""
    directory = os.environ.get('PGHA_SECRETS_DIR', '')
    assert os.path.isdir(directory), 'no secrets directory %r: the check would look for nothing' % directory
    found = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as handle:
            # ansible's password lookup file: the password, then optional "salt=..." fields
            words = handle.read().split()
        if words:
            found[name] = words[0]
    assert found, 'no password in %s' % directory
    return found


def logged_secrets(node, secrets, extra_dirs=()):
    """How often each secret appears in a node's logs, with the journal's size and the file count."""
    command = 'python3 -c %s %s' % (shlex.quote(_LOG_COLLECTOR), ' '.join(shlex.quote(d) for d in extra_dirs))
    journal_bytes, files, blob = node.check_output(command).split(' ', 2)
    logs = gzip.decompress(base64.b64decode(blob))
    return {'journal_bytes': int(journal_bytes), 'files': int(files),
            'hits': {name: logs.count(value.encode()) for name, value in secrets.items()}}


@pytest.fixture(scope='module')
def assert_no_secret_logged(nodes, lab_secrets):
    """Issue 11: a check that no generated password is in any log of any node.

    Call it last in a scenario's verify (after the deploy, the re-run, the
    side effect and the other checks); extra_dirs adds log directories outside
    /var/log. A failure names nodes and secrets, never their values.
    """
    def check(extra_dirs=()):
        for name, node in nodes.items():
            found = logged_secrets(node, lab_secrets, extra_dirs)
            # an empty journal would mean the logs were not read
            assert found['journal_bytes'] > 10000 and found['files'] > 0, (name, found)
            assert not any(found['hits'].values()), (name, found['hits'])
    return check
