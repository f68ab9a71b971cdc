"""repmgr.conf as the role writes it, under every settings profile of the descriptor.

repmgr refuses a configuration file with a setting out of range before it does
anything (`child_nodes_check_interval` must be 1 or greater), so a profile that
renders one would stop the deployment at the first `repmgr primary register`.
"""
import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, 'roles', 'repmgr')
MEMBERS = ['pg1', 'pg2', 'pg3']

with open(os.path.join(REPO, 'playbooks', 'vars', 'solutions', 'repmgr.yml')) as _handle:
    PROFILES = {p['name']: p.get('overrides') or {} for p in yaml.safe_load(_handle)['pgha_solution']['profiles']}

# Settings repmgr checks to be at least 1 when present (repmgr 5.3 configfile.c).
AT_LEAST_ONE = ('monitor_interval_secs', 'reconnect_attempts', 'reconnect_interval', 'child_nodes_check_interval')


def render(overrides):
    variables = {}
    for path in ('defaults', 'vars'):
        with open(os.path.join(ROLE, path, 'main.yml')) as handle:
            # The role's own files: their expressions are templated as Ansible does.
            variables.update({key: trust_as_template(value) if isinstance(value, str) else value
                              for key, value in (yaml.safe_load(handle) or {}).items()})
    variables.update({
        'groups': {'database_nodes': MEMBERS}, 'inventory_hostname': 'pg1', 'ansible_managed': 'managed',
        'postgresql_version': 15, 'postgresql_cluster_name': 'main',
        'postgresql_data_directory': '/var/lib/postgresql/15/main', 'postgresql_config_directory': '/etc/postgresql/15/main',
        '_repmgr_names': {m: m for m in MEMBERS}, '_repmgr_node_ids': {m: i + 1 for i, m in enumerate(MEMBERS)},
        '_repmgr_conninfos': {m: 'host=%s dbname=repmgr user=repmgr connect_timeout=2' % m for m in MEMBERS},
    })
    variables.update(overrides)
    with open(os.path.join(ROLE, 'templates', 'repmgr.conf.j2')) as handle:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(handle.read()))
    settings = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith('#'):
            key, value = line.split('=', 1)
            settings[key.strip()] = value.strip().strip("'")
    return settings


@pytest.mark.parametrize('profile', sorted(PROFILES))
def test_every_profile_renders_settings_repmgr_accepts(profile):
    settings = render(PROFILES[profile])
    for key in AT_LEAST_ONE:
        if key in settings:
            assert int(settings[key]) >= 1, '%s=%s: repmgr refuses values below 1' % (key, settings[key])
    assert 'connect_timeout=' in settings['conninfo']


def test_the_fence_is_written_only_when_asked_for():
    fenced = render({'repmgr_fence_isolated_primary': True})
    assert fenced['child_nodes_disconnect_command'].endswith('systemctl stop postgresql@15-main')
    assert fenced['child_nodes_connected_min_count'] == '1'
    # Without the fence, repmgr's own child-node defaults (checks and events, no command).
    unfenced = render({'repmgr_fence_isolated_primary': False})
    assert not [key for key in unfenced if key.startswith('child_nodes_')]


@pytest.mark.parametrize('members, witness, min_count', [
    (['pg1', 'pg2', 'pg3'], '', '1'),
    (['pg1', 'pg2'], 'w1', '1'),
    (['pg1', 'pg2', 'pg3', 'pg4'], 'w1', '2'),
    (['pg1', 'pg2', 'pg3', 'pg4', 'pg5'], '', '2'),
])
def test_the_fence_counts_the_witness_as_a_voter(members, witness, min_count):
    """The primary stays up while it and the nodes attached to it are a majority of the voters: with a witness the
    witness's connection counts (child_nodes_connected_include_witness), so 2 members and a witness keep the primary
    when its only standby fails."""
    settings = render({'repmgr_members': members, 'repmgr_witness': witness})
    assert settings['child_nodes_connected_min_count'] == min_count
    assert settings['child_nodes_connected_include_witness'] == ('true' if witness else 'false')
