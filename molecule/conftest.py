"""Make testinfra reach podman lab nodes directly.

Molecule hands testinfra its Ansible inventory. testinfra does not know the
containers.podman.podman connection, so it would run one ansible process per
check (seconds each). Hosts reached with that connection are switched to
testinfra's own podman backend (`podman exec`), which is what Ansible does
too, only without the overhead. Other hosts are left to the Ansible backend.
"""
import json
import subprocess

import pytest
import testinfra

# nsenter: the scenarios' default (.config/molecule/config.yml), into the same containers.
PODMAN_CONNECTIONS = ('containers.podman.podman', 'podman', 'community.docker.nsenter')


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
