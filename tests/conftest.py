"""Test harness shared by unit and integration tests.

Modules are imported through a temporary ``ansible_collections/pgha/cluster``
symlink so that their ``ansible_collections.pgha.cluster...`` imports resolve
exactly as they do when the collection is installed.
"""
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS_ROOT = tempfile.mkdtemp(prefix='pgha-collections-')
os.makedirs(os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha'))
os.symlink(REPO_ROOT, os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha', 'cluster'))
sys.path.insert(0, _COLLECTIONS_ROOT)
os.environ['ANSIBLE_COLLECTIONS_PATH'] = _COLLECTIONS_ROOT + os.pathsep + os.environ.get(
    'ANSIBLE_COLLECTIONS_PATH', '')

pytest_plugins = ['tests.helpers.fixtures']
