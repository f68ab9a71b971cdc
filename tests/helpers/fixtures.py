"""Fixtures: run a module in-process, and real PostgreSQL servers on loopback.

``pg_factory`` starts real PostgreSQL instances (the host's server binaries)
in temporary directories on free loopback ports. Every instance it starts is
stopped at the end of the test, whatever happens.
"""
import contextlib
import importlib
import io
import json
import os
import pwd
import socket
import tempfile
import time

import pytest

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args

from tests.helpers.pg import PgInstance, find_bin_dir

SUPERUSER_PASSWORD = 'super-Secret-pw1'
REPLICATION_PASSWORD = 'repl-Secret-pw2'


class ModuleResult(dict):
    @property
    def failed(self):
        return bool(self.get('failed'))

    @property
    def changed(self):
        return bool(self.get('changed'))


def run_module(name, args, check_mode=False, diff=False):
    """Run ``pgha.cluster.<name>`` in this process and return its JSON result."""
    module = importlib.import_module('ansible_collections.pgha.cluster.plugins.modules.%s' % name)
    module_args = dict(args)
    module_args['_ansible_check_mode'] = check_mode
    module_args['_ansible_diff'] = diff
    module_args['_ansible_remote_tmp'] = tempfile.gettempdir()
    module_args['_ansible_keep_remote_files'] = False
    # Each real module run is a process of its own: start without the warnings of earlier in-process runs.
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    stdout = io.StringIO()
    # Once a test has imported controller code (a lookup or filter plugin), ansible marks the whole
    # process as the controller, and module warnings would go to the terminal instead of the
    # result. A real module run is never the controller.
    was_controller, module_internal.is_controller = module_internal.is_controller, False
    try:
        with patch_module_args(module_args), contextlib.redirect_stdout(stdout):
            with pytest.raises(SystemExit):
                module.main()
    finally:
        module_internal.is_controller = was_controller
    return ModuleResult(json.loads(stdout.getvalue()))


@pytest.fixture
def module_runner():
    return run_module


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def pg_bin_dir():
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip('PostgreSQL server binaries not found')
    return bin_dir


@pytest.fixture
def pg_factory(pg_bin_dir, tmp_path):
    """Create PostgreSQL instances: ``pg_factory.primary()``, ``pg_factory.standby_of(p)``."""
    factory = PgFactory(pg_bin_dir, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


class PgFactory:
    def __init__(self, bin_dir, base_dir):
        self.bin_dir = bin_dir
        self.base_dir = str(base_dir)
        self.instances = []
        # Server processes cannot run as root: run them as an unprivileged
        # user when the tests run as root (CI does).
        self.os_user = None
        if os.geteuid() == 0:
            self.os_user = 'postgres' if _user_exists('postgres') else 'nobody'
            os.chmod(self.base_dir, 0o777)
            parent = os.path.dirname(self.base_dir)
            while parent not in ('/', ''):
                st = os.stat(parent)
                if not st.st_mode & 0o001:
                    os.chmod(parent, st.st_mode | 0o711)
                parent = os.path.dirname(parent)

    def new_instance(self, name):
        inst = PgInstance(self.bin_dir, os.path.join(self.base_dir, name), free_port(), self.os_user,
                          superuser_password=SUPERUSER_PASSWORD,
                          replication_password=REPLICATION_PASSWORD)
        self.instances.append(inst)
        return inst

    def primary(self, name='primary', settings=None):
        inst = self.new_instance(name)
        inst.initdb(settings=settings)
        inst.start()
        inst.create_replication_user()
        return inst

    def standby_of(self, primary, name='standby', slot=None):
        """A standby cloned with plain pg_basebackup (for tests that need one ready)."""
        inst = self.new_instance(name)
        inst.basebackup_from(primary, slot=slot)
        inst.start()
        return inst

    def stop_all(self):
        for inst in reversed(self.instances):
            inst.stop(mode='immediate', check=False)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def wait_for(predicate, timeout=30.0, interval=0.2, what='condition'):
    """Poll ``predicate`` until it returns a truthy value; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.0fs waiting for %s' % (timeout, what))
        time.sleep(interval)


@pytest.fixture
def module_log(monkeypatch):
    """What modules send to the target's syslog or journal (``AnsibleModule.log``), captured instead.

    AnsibleModule logs its arguments ("Invoked with ...") while it validates
    them, before the module's own code runs.
    """
    from ansible.module_utils.basic import AnsibleModule
    messages = []
    monkeypatch.setattr(AnsibleModule, 'log', lambda self, msg, log_args=None: messages.append(str(msg)))
    return messages
