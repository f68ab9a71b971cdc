#!/usr/bin/env python3
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--socket', required=True, help='path of the Unix socket to listen on')
    parser.add_argument('--allow', action='append', required=True, help='a container this switch may turn off and on')
    parser.add_argument('--podman', default='podman')
    parser.add_argument('--timeout', type=float, default=20.0, help='seconds for each podman call and for a kill')
    args = parser.parse_args(argv)
    # SIGTERM (the lab's teardown) ends serve_forever; its finally removes the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.socket, PowerSwitch(args.allow, args.podman, args.timeout))


if __name__ == '__main__':
    main()
