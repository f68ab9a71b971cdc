# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pgpool-II PCP plumbing: run the ``pcp_*`` commands, parse their output,
and drive one backend node to a declared state.

The ``pgpool_node`` module is a thin wrapper around :func:`ensure_node_state`.

Facts about the PCP client tools of Pgpool-II 4.3 this code relies on (all
verified against pgpool2 4.3.5):

* Most server-side failures exit with status **0** and only print
  ``ERROR:`` / ``FATAL:`` on stderr (invalid node id, "already primary",
  detaching a node that is already down). Exit status alone is not enough.
* ``pcp_promote_node`` on a node that Pgpool-II has as *down* prints
  "Command Successful" and silently does nothing (the refusal is only in the
  server log), so the node's status is checked before promoting and the
  result is always verified by reading the node again.
* attach, detach and promote are asynchronous: the command returns once the
  request is queued; the main process performs the failover/failback a
  moment later. The new state is therefore polled for, with a deadline.
* The client refuses ports below 1024 ("Invalid port number") and exits 0.
* The password is only ever read from a PCPPASSFILE
  (``hostname:port:username:password``); ``-w`` forbids any prompt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import tempfile
import time

# (result key, label printed by ``pcp_node_info --verbose``), in the order
# of the positional (terse) output.
NODE_FIELDS = (
    ('hostname', 'Hostname'),
    ('port', 'Port'),
    ('status', 'Status'),
    ('weight', 'Weight'),
    ('status_name', 'Status Name'),
    ('backend_status', 'Backend Status Name'),
    ('role', 'Role'),
    ('backend_role', 'Backend Role'),
    ('replication_delay', 'Replication Delay'),
    ('replication_state', 'Replication State'),
    ('replication_sync_state', 'Replication Sync State'),
    ('last_status_change', 'Last Status Change'),
)
_LABEL_TO_KEY = dict((label, key) for key, label in NODE_FIELDS)
_INT_FIELDS = ('port', 'status', 'replication_delay')
_FLOAT_FIELDS = ('weight',)

# Pgpool-II's own view of a node ("Status Name").
ATTACHED_STATUSES = ('up', 'waiting')
DETACHED_STATUSES = ('down',)

STATES = ('attached', 'detached', 'primary')

_ERROR_LINE = re.compile(r'^\s*(ERROR|FATAL):\s*(.*)$')
_DETAIL_LINE = re.compile(r'^\s*(DETAIL|HINT):\s*(.*)$')


class PcpError(Exception):
    """A PCP command failed. ``kind`` classifies the failure."""

    def __init__(self, message, kind='error', command=None, stderr=''):
        super(PcpError, self).__init__(message)
        self.kind = kind          # auth | connection | invalid_node | refused | timeout | parse | error
        self.command = command
        self.stderr = stderr


# -- parsing ---------------------------------------------------------------------
def _normalize_key(label):
    return re.sub(r'[^a-z0-9]+', '_', label.strip().lower()).strip('_')


def _convert(key, value):
    value = value.strip()
    try:
        if key in _INT_FIELDS:
            return int(value)
        if key in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        pass
    return value


def parse_node_info_verbose(text):
    """Parse ``pcp_node_info --verbose`` output (one node or ``-a``).

    Returns a list of dicts keyed as in :data:`NODE_FIELDS`; blocks are
    separated by blank lines. Unknown labels (other versions) are kept
    under a normalized key.
    """
    nodes = []
    current = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                nodes.append(current)
                current = {}
            continue
        if ':' not in line:
            continue
        label, value = line.split(':', 1)
        label = label.strip()
        key = _LABEL_TO_KEY.get(label) or _normalize_key(label)
        if key in current:          # a new block without a blank separator
            nodes.append(current)
            current = {}
        current[key] = _convert(key, value)
    if current:
        nodes.append(current)
    return nodes


def parse_node_info_line(line):
    """Parse one line of the positional ``pcp_node_info`` output (4.3 format).

    ``hostname port status weight status_name backend_status role
    backend_role replication_delay replication_state replication_sync_state
    last_status_change``; the last field holds a space (date and time).
    """
    parts = line.split()
    if len(parts) < 13:
        raise PcpError('unexpected pcp_node_info output (expected 12 fields as printed by '
                       'Pgpool-II 4.3): %r' % line, kind='parse')
    values = parts[:11] + [' '.join(parts[11:])]
    return dict((key, _convert(key, value)) for (key, _label), value in zip(NODE_FIELDS, values))


def parse_pool_status(text):
    """Parse ``pcp_pool_status`` (name / value / desc blocks) into {name: value}."""
    settings = {}
    name = None
    for line in text.splitlines():
        if line.startswith('name :'):
            name = line[len('name :'):].strip()
        elif line.startswith('value:') and name is not None:
            settings[name] = line[len('value:'):].strip()
            name = None
    return settings


def parse_errors(stderr):
    """The ``ERROR:`` / ``FATAL:`` message of a PCP command (with DETAIL), or ''."""
    messages = []
    for line in (stderr or '').splitlines():
        match = _ERROR_LINE.match(line)
        if match:
            messages.append(match.group(2).strip())
            continue
        match = _DETAIL_LINE.match(line)
        if match and messages:
            messages[-1] += ' (%s)' % match.group(2).strip()
    return '; '.join(messages)


def classify_error(message):
    lowered = message.lower()
    if 'authentication failed' in lowered or 'password' in lowered:
        return 'auth'
    if 'invalid node id' in lowered:
        return 'invalid_node'
    if ('connection to host' in lowered or 'could not connect' in lowered
            or 'could not retrieve hostname' in lowered or 'connection refused' in lowered
            or 'invalid port number' in lowered
            # The PCP child is restarted after attach/detach/promote; a command
            # that hits that moment reads EOF (verified on 4.3.5).
            or 'unable to read data from socket' in lowered
            or 'unable to write data to socket' in lowered):
        return 'connection'
    return 'refused'


# -- password file -------------------------------------------------------------------
def _escape_passfield(value):
    return str(value).replace('\\', '\\\\').replace(':', '\\:')


def pcppass_line(host, port, user, password):
    """One PCPPASSFILE entry: ``hostname:port:username:password``."""
    return ':'.join(_escape_passfield(v) for v in (host, port, user, password)) + '\n'


# -- running commands ------------------------------------------------------------------
def default_runner(argv, env, timeout):
    """Run ``argv``; return (rc, stdout, stderr). Raises PcpError on timeout."""
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              universal_newlines=True, check=False)
    except subprocess.TimeoutExpired:
        raise PcpError('%s did not answer within pcp_timeout=%ss' % (argv[0], timeout),
                       kind='timeout', command=' '.join(argv))
    return proc.returncode, proc.stdout, proc.stderr


def find_pcp_bin_dir(get_bin_path=None):
    """Directory of the PCP client tools (``pcp_node_info``), or None."""
    candidates = []
    if get_bin_path is not None:
        candidates.append(get_bin_path('pcp_node_info'))
    candidates.append(shutil.which('pcp_node_info'))
    for directory in ('/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/pgpool-II/bin',
                      '/usr/local/pgpool2/bin'):
        candidates.append(os.path.join(directory, 'pcp_node_info'))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.dirname(candidate)
    return None


class PcpClient:
    """Runs PCP commands against one Pgpool-II with non-interactive auth.

    Exactly one of ``password`` (written to a private temporary PCPPASSFILE,
    mode 0600, removed by :meth:`close`) or ``passfile`` (an existing file)
    may be given; with neither, the PCP tools fall back to ``$PCPPASSFILE`` or
    ``~/.pcppass``. The password never appears on a command line.
    """

    def __init__(self, bin_dir, host='localhost', port=9898, user=None, password=None,
                 passfile=None, timeout=60, runner=None, tmpdir=None):
        self.bin_dir = bin_dir
        self.host = host
        self.port = int(port)
        self.user = user
        self.timeout = timeout
        self.runner = runner or default_runner
        self.sleep = time.sleep
        self._tmp_dir = None
        self.passfile = passfile
        if password is not None:
            self._tmp_dir = tempfile.mkdtemp(prefix='pgha-pcp-', dir=tmpdir)
            os.chmod(self._tmp_dir, 0o700)
            self.passfile = os.path.join(self._tmp_dir, 'pcppass')
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w') as handle:
                handle.write(pcppass_line(host, self.port, user, password))
        self.history = []

    def close(self):
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def argv(self, command, *args):
        argv = [os.path.join(self.bin_dir, command) if self.bin_dir else command,
                '-h', self.host, '-p', str(self.port)]
        if self.user:
            argv += ['-U', self.user]
        argv.append('-w')
        return argv + [str(a) for a in args]

    @staticmethod
    def display(argv):
        """The command as reported to the user (program name, no path)."""
        return ' '.join([os.path.basename(argv[0])] + argv[1:])

    def env(self):
        env = dict(os.environ)
        env['LC_ALL'] = 'C'
        env['LANG'] = 'C'
        if self.passfile:
            env['PCPPASSFILE'] = self.passfile
        return env

    def run(self, command, *args, **kwargs):
        """Run one PCP command; return stdout or raise PcpError.

        ``retries`` (read-only commands only) repeats a command that hit the
        restart of Pgpool-II's PCP child ("unable to read data from socket").
        """
        retries = kwargs.get('retries', 0)
        while True:
            try:
                return self._run_once(command, *args)
            except PcpError as exc:
                if retries <= 0 or 'unable to read data from socket' not in exc.stderr:
                    raise
                retries -= 1
                self.sleep(0.3)

    def _run_once(self, command, *args):
        argv = self.argv(command, *args)
        shown = self.display(argv)
        rc, out, err = self.runner(argv, self.env(), self.timeout)
        message = parse_errors(err)
        if not message and rc != 0:
            message = (err or out or '').strip() or 'exit status %d' % rc
        if not message and not out.strip() and err.strip():
            # e.g. "Invalid port number" is printed with exit status 0.
            message = err.strip()
        if message:
            raise PcpError('%s failed: %s' % (shown, message), kind=classify_error(message),
                           command=shown, stderr=err)
        return out

    # -- reading -----------------------------------------------------------
    def node_infos(self):
        """Every backend node, as dicts with ``node_id`` added."""
        out = self.run('pcp_node_info', '--verbose', '-a', retries=3)
        nodes = parse_node_info_verbose(out)
        if not nodes:
            raise PcpError('pcp_node_info printed no node information: %r' % out, kind='parse')
        for node_id, node in enumerate(nodes):
            node['node_id'] = node_id
        return nodes

    def pool_status(self):
        return parse_pool_status(self.run('pcp_pool_status', retries=3))

    # -- changing -----------------------------------------------------------
    def change(self, command, *args):
        argv = self.argv(command, *args)
        self.history.append(self.display(argv))
        out = self.run(command, *args)
        if 'Command Successful' not in out:
            raise PcpError('%s did not report success: %r' % (self.display(argv), out.strip()),
                           kind='refused', command=self.display(argv))
        return out


# -- the state machine -----------------------------------------------------------------
def is_attached(node):
    return node.get('status_name') in ATTACHED_STATUSES


def satisfied(node, state):
    if state == 'attached':
        return is_attached(node)
    if state == 'detached':
        return node.get('status_name') in DETACHED_STATUSES
    return is_attached(node) and node.get('role') == 'primary'


def summary(node):
    """The part of a node's state this module manages (used for the diff)."""
    if not node:
        return {}
    return dict((k, node.get(k)) for k in ('node_id', 'hostname', 'port', 'status_name', 'role'))


class NodeStateError(Exception):
    """A failure the module reports with fail_json; ``result`` goes along."""

    def __init__(self, message, result=None):
        super(NodeStateError, self).__init__(message)
        self.result = result or {}


def plan(nodes, node_id, state, gracefully=False, switchover=False):
    """Decide what to run. Returns (argv-less command tuple or None, predicted node).

    Raises NodeStateError for requests that cannot succeed, before anything
    is changed.
    """
    if node_id >= len(nodes):
        raise NodeStateError(
            'node_id=%d does not exist: this Pgpool-II has %d backend node(s) (ids 0-%d). '
            'Use a node_id that matches a backend_hostnameN entry in pgpool.conf.'
            % (node_id, len(nodes), len(nodes) - 1))
    node = nodes[node_id]
    if satisfied(node, state):
        return None, dict(node)
    predicted = dict(node)
    if state == 'attached':
        predicted.update(status=1, status_name='waiting')
        return ('pcp_attach_node', '-n', str(node_id)), predicted
    if state == 'detached':
        predicted.update(status=3, status_name='down')
        args = ['-n', str(node_id)]
        if gracefully:
            args.insert(0, '-g')
        return tuple(['pcp_detach_node'] + args), predicted
    # state == 'primary'
    if not is_attached(node):
        raise NodeStateError(
            'node_id=%d is %r in Pgpool-II; pcp_promote_node ignores nodes that are not up. '
            'Attach it first (state=attached) and retry state=primary.'
            % (node_id, node.get('status_name')))
    predicted.update(role='primary')
    args = ['-n', str(node_id)]
    if gracefully:
        args.insert(0, '-g')
    if switchover:
        args.insert(0, '-s')
    return tuple(['pcp_promote_node'] + args), predicted


def _read_node(client, node_id):
    return client.node_infos()[node_id]


def wait_for_state(client, node_id, state, timeout, interval=0.5, clock=time.monotonic,
                   sleep=time.sleep):
    """Poll until the node satisfies ``state``; return (satisfied, last node read)."""
    deadline = clock() + timeout
    node = None
    while True:
        try:
            node = _read_node(client, node_id)
            if satisfied(node, state):
                return True, node
        except PcpError as exc:
            # The PCP child is restarted during a failover: retry connection
            # hiccups until the deadline, give up on anything else.
            if exc.kind not in ('connection', 'timeout'):
                raise
        if clock() >= deadline:
            return False, node
        sleep(interval)


def ensure_node_state(client, node_id, state, gracefully=False, switchover=False,
                      check_mode=False, wait_timeout=60, warn=None):
    """Drive one node to ``state``; return the module result (without ``msg``).

    Raises NodeStateError (a clear reason, with whatever result is known) or
    PcpError.
    """
    warn = warn or (lambda msg: None)
    nodes = client.node_infos()
    command, predicted = plan(nodes, node_id, state, gracefully=gracefully, switchover=switchover)
    before = nodes[node_id]
    result = dict(changed=False, node_before=before, node_after=before, commands=[])
    if command is None:
        return result

    if state == 'primary':
        settings = client.pool_status()
        failover_command = settings.get('failover_command', '')
        follow_primary = settings.get('follow_primary_command', '')
        if switchover and not failover_command:
            raise NodeStateError(
                'switchover=true needs failover_command in pgpool.conf (it is what promotes '
                'PostgreSQL on node_id=%d); it is empty, so Pgpool-II would only detach the '
                'current primary and be left without one. Configure failover_command (and '
                'follow_primary_command), or use switchover=false to change only '
                "Pgpool-II's view." % node_id, result)
        if not switchover and follow_primary:
            warn('follow_primary_command is set in Pgpool-II: pcp_promote_node runs it even '
                 'without switchover, which may re-point or rebuild the other backends.')

    shown = client.display(client.argv(*command))
    result.update(changed=True, commands=[shown], node_after=predicted)
    if check_mode:
        return result

    client.change(*command)
    ok, after = wait_for_state(client, node_id, state, wait_timeout)
    result['node_after'] = after
    if not ok:
        hint = ''
        if state == 'primary' and switchover:
            hint = (' With switchover=true the failover_command must promote node_id=%d; '
                    'check it and the Pgpool-II log.' % node_id)
        raise NodeStateError(
            'Pgpool-II accepted "%s" but node_id=%d did not reach state=%s within '
            'pcp_timeout=%ss (status_name=%r, role=%r).%s'
            % (shown, node_id, state, wait_timeout, (after or {}).get('status_name'),
               (after or {}).get('role'), hint), result)
    return result
