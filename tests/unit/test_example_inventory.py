"""inventories/example works as the README says: copy it, add a vault file, deploy.

Following the Vault comment used to create group_vars/all/ next to group_vars/all.yml,
and Ansible then ignored all.yml (ansible_user, ansible_become lost).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(REPO, 'inventories', 'example')


def listed_secrets():
    """The pgha_*_password names the example's comment tells the user to put in the vault."""
    with open(os.path.join(EXAMPLE, 'group_vars', 'all', 'main.yml')) as handle:
        return set(re.findall(r'^#\s+(pgha_\w+_password):', handle.read(), re.M))


def test_following_the_vault_comment_keeps_the_connection_settings(tmp_path):
    inventory = tmp_path / 'my_inventory'
    shutil.copytree(EXAMPLE, inventory)
    secrets = {name: 'example-' + name for name in sorted(listed_secrets())}
    # what `ansible-vault create my_inventory/group_vars/all/vault.yml` makes (unencrypted here)
    (inventory / 'group_vars' / 'all' / 'vault.yml').write_text(
        '---\n' + ''.join('%s: %s\n' % item for item in secrets.items()))
    result = subprocess.run([os.path.join(BIN, 'ansible-inventory'), '-i', str(inventory), '--host', 'db1'],
                            cwd=str(tmp_path), capture_output=True, text=True, check=True, timeout=60)
    host = json.loads(result.stdout)
    assert host['ansible_user'] == 'admin'
    assert host['ansible_become'] is True
    for name, value in secrets.items():
        assert host[name] == value


def test_the_example_lists_every_secret_the_roles_and_playbooks_read():
    used = set()
    for path in glob.glob(os.path.join(REPO, 'roles', '*', 'defaults', 'main.yml')) + \
            glob.glob(os.path.join(REPO, 'playbooks', 'vars', '*.yml')):
        with open(path) as handle:
            used |= set(re.findall(r'\b(pgha_\w+_password)\b', handle.read()))
    assert used, 'no secret found: the test would check nothing'
    assert used <= listed_secrets(), sorted(used - listed_secrets())


def test_the_readme_names_the_required_secrets():
    with open(os.path.join(REPO, 'README.md')) as handle:
        readme = handle.read()
    section = readme.split('## Using the collection on your own hosts', 1)[1].split('\n## ', 1)[0]
    for name in listed_secrets():
        assert name in section, name
