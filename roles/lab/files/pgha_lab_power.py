"""The lab's power switch: what a BMC or a PDU is to a real host, for the lab's
containers. It runs on the podman host and listens on a Unix socket that is
mounted into the lab's containers, so a fence agent in one of them can turn
another one off and on (the fence agent fence_pgha_lab speaks to it).

One request per connection, one line each way:

    status <name>   ->  ok on | ok off
    off <name>      ->  ok off      (SIGKILL, also of a paused container: a
                                     frozen host is fenced without running again)
    on <name>       ->  ok on
    list            ->  ok <name> <name> ...

Only the containers named with --allow can be switched; anything else gets
"error <reason>". Every podman call is bounded by --timeout seconds.

    pgha_lab_power.py start --dir DIR --allow pg1 --allow pg2 ...
    pgha_lab_power.py stop --dir DIR

start serves DIR/power.sock in the background (pid file and log in DIR) and
keeps a switch already running there for the same names; stop ends it. The
lab role and the Molecule scenarios that fence use these two.
"""
import argparse
import os
import signal
import socketserver
import subprocess
import sys
import time

ON_STATES = ('running', 'paused')


class PowerSwitch:
    def __init__(self, allowed, podman='podman', timeout=20.0):
        self.allowed = list(allowed)
        self.podman = podman
        self.timeout = timeout

    def _podman(self, *args):
        return subprocess.run([self.podman] + list(args), capture_output=True, text=True, timeout=self.timeout,
                              check=False)

    def state(self, name):
        result = self._podman('inspect', '--type', 'container', '--format', '{{.State.Status}}', name)
        if result.returncode != 0:
            raise RuntimeError('cannot read the state of %s: %s' % (name, (result.stderr or result.stdout).strip()))
        return 'on' if result.stdout.strip() in ON_STATES else 'off'

    def off(self, name):
        if self.state(name) == 'off':
            return 'off'
        result = self._podman('kill', '--signal', 'KILL', name)
        deadline = time.monotonic() + self.timeout
        while self.state(name) == 'on':
            if time.monotonic() > deadline:
                raise RuntimeError('%s is still running after SIGKILL: %s' % (name, result.stderr.strip()))
            time.sleep(0.1)
        return 'off'

    def on(self, name):
        if self.state(name) == 'on':
            return 'on'
        result = self._podman('start', name)
        if result.returncode != 0:
            raise RuntimeError('cannot start %s: %s' % (name, result.stderr.strip()))
        return self.state(name)

    def handle(self, line):
        """One request line in, one answer line out."""
        words = line.split()
        if words == ['list']:
            return 'ok ' + ' '.join(self.allowed)
        if len(words) != 2 or words[0] not in ('status', 'off', 'on'):
            return 'error expected "status|off|on <name>" or "list"'
        action, name = words
        if name not in self.allowed:
            return 'error %s is not a container of this lab' % name
        try:
            return 'ok ' + (self.state(name) if action == 'status' else getattr(self, action)(name))
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            return 'error %s' % str(error).replace('\n', ' ')


def serve(path, switch):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline(256).decode('utf-8', 'replace')
            answer = switch.handle(line)
            self.wfile.write((answer + '\n').encode())
            sys.stdout.write('%s %s -> %s\n' % (time.strftime('%H:%M:%S'), line.strip(), answer))
            sys.stdout.flush()

    if os.path.exists(path):
        os.unlink(path)
    server = socketserver.ThreadingUnixStreamServer(path, Handler)
    # The containers' root (the fence agent runs as root in them) connects.
    os.chmod(path, 0o600)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)


def _running_switch(directory):
    """The pid of the switch serving directory's socket, or None (a pid file
    naming a process that is no longer this switch is ignored)."""
    try:
        with open(os.path.join(directory, 'switch.pid')) as handle:
            pid = int(handle.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            words = handle.read().decode('utf-8', 'replace').split('\0')
    except (OSError, ValueError):
        return None, []
    sock = os.path.join(directory, 'power.sock')
    if sock not in words or not any(word.endswith('pgha_lab_power.py') for word in words):
        return None, []
    return pid, [words[i + 1] for i, word in enumerate(words[:-1]) if word == '--allow']


def stop(directory):
    """Stops the switch started for directory; True when one was running."""
    pid = _running_switch(directory)[0]
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists('/proc/%d' % pid):
            time.sleep(0.05)
        if os.path.exists('/proc/%d' % pid):
            os.kill(pid, signal.SIGKILL)
    try:
        os.unlink(os.path.join(directory, 'switch.pid'))
    except FileNotFoundError:
        pass
    return pid is not None


def start(directory, allowed, podman='podman', timeout=20.0):
    """Starts a switch for directory in the background (its own session, log
    in directory/switch.log); a running one for the same names is kept.
    True when it started one."""
    pid, serving = _running_switch(directory)
    if pid is not None and serving == list(allowed):
        return False
    stop(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    sock = os.path.join(directory, 'power.sock')
    argv = [sys.executable, os.path.abspath(__file__), 'serve', '--socket', sock, '--podman', podman,
            '--timeout', str(timeout)]
    for name in allowed:
        argv += ['--allow', name]
    with open(os.path.join(directory, 'switch.log'), 'ab') as log, open(os.devnull, 'rb') as nothing:
        process = subprocess.Popen(argv, stdin=nothing, stdout=log, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                                   start_new_session=True)
    with open(os.path.join(directory, 'switch.pid'), 'w') as handle:
        handle.write('%d\n' % process.pid)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit('the power switch did not start; see %s' % os.path.join(directory, 'switch.log'))
        time.sleep(0.05)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    commands = parser.add_subparsers(dest='command', required=True)
    serve_args = commands.add_parser('serve', help='serve in the foreground')
    serve_args.add_argument('--socket', required=True, help='path of the Unix socket to listen on')
    start_args = commands.add_parser('start', help='serve in the background for a directory (socket, pid file, log)')
    stop_args = commands.add_parser('stop', help='stop the switch started for a directory')
    for sub in (start_args, stop_args):
        sub.add_argument('--dir', required=True, help='directory of the socket (power.sock), pid file and log')
    for sub in (serve_args, start_args):
        sub.add_argument('--allow', action='append', required=True,
                         help='a container this switch may turn off and on')
        sub.add_argument('--podman', default='podman')
        sub.add_argument('--timeout', type=float, default=20.0, help='seconds for each podman call and for a kill')
    args = parser.parse_args(argv)
    if args.command == 'start':
        print('started' if start(args.dir, args.allow, args.podman, args.timeout) else 'running')
    elif args.command == 'stop':
        print('stopped' if stop(args.dir) else 'not running')
    else:
        # SIGTERM (the lab's teardown) ends serve_forever; its finally removes the socket.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve(args.socket, PowerSwitch(args.allow, args.podman, args.timeout))


if __name__ == '__main__':
    main()
