"""Stop this member's PostgreSQL primary as soon as its Patroni no longer holds the leader key.

Patroni demotes a primary that lost its leader key, but when it loses etcd it
hands that demotion to a background thread which waits for the lock its own
main loop holds for a whole cycle; with a short loop_wait the loop takes the
lock back at once, cycle after cycle. In the lab (Patroni 3.0.4, ttl 5,
loop_wait 1) a primary cut off from etcd kept running and writable for 7 s
after it lost the key, 6 s after another member had been promoted: two
primaries. Patroni's REST API knows sooner: /leader answers 503 once the key is
lost, and at the latest one ttl after the last renewal, whatever the main loop
is doing.

This watch runs beside Patroni on every member, as the postgres account. Every
interval it asks the local PostgreSQL whether it is a primary; if so, it asks
the local Patroni's GET /leader. It stops PostgreSQL (SIGINT to the postmaster:
PostgreSQL's fast shutdown, which refuses new sessions at once and ends the
open ones) when /leader answers 503 while:

- this same postmaster was seen with /leader 200 under this same Patroni
  process (so a cluster being bootstrapped, a primary Patroni has just
  restarted, or a Patroni process just restarted by systemd, which answers 503
  until its first cycle, is left alone);
- Patroni is not paused (maintenance mode: Patroni leaves PostgreSQL alone,
  and so does this watch).

When /leader does not answer at all (Patroni stopped or restarting), nothing
is done: Patroni decides once it runs again. Patroni then does what it does
with any stopped former leader: it keeps PostgreSQL down while etcd is out of
reach and starts it as a replica of the new leader (with pg_rewind where
needed) once etcd answers.

Standard library only; settings from the JSON file the patroni role writes.
"""
import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

ANSWER_TIMEOUT_SECONDS = 2
LOCAL_QUERY = 'SELECT pg_is_in_recovery(), pg_postmaster_start_time()'


def log(message):
    print('pgha-patroni-leader-fence: %s' % message, file=sys.stderr, flush=True)


class LeaderFence:
    """One member's watch. ``settings``: the role's JSON file as a dict."""

    def __init__(self, settings):
        self.settings = settings
        self.armed_for = None
        self.context = None
        if settings.get('cacert'):
            self.context = ssl.create_default_context(cafile=settings['cacert'])

    def local_state(self):
        """(in recovery, postmaster start time) of the local PostgreSQL; None when it does not answer."""
        settings = self.settings
        # Polls once a second: not worth a line each in PostgreSQL's log (the
        # superuser may turn log_connections off for its session).
        env = dict(os.environ, PGOPTIONS='-c log_connections=off -c log_disconnections=off',
                   PGCONNECT_TIMEOUT=str(ANSWER_TIMEOUT_SECONDS), LC_ALL='C')
        command = [os.path.join(settings['bin_directory'], 'psql'), '-XAtq', '-h', settings['socket_directory'],
                   '-p', str(settings['port']), '-U', settings['superuser'], '-d', 'postgres', '-c', LOCAL_QUERY]
        try:
            answer = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                                    timeout=ANSWER_TIMEOUT_SECONDS + 1)
        except subprocess.TimeoutExpired:
            return None
        in_recovery, _separator, started = answer.stdout.strip().partition('|')
        if answer.returncode != 0 or in_recovery not in ('t', 'f'):
            return None
        return in_recovery == 't', started

    def patroni_process(self):
        """Patroni's main PID as systemd knows it ('0' or '' when it is not running)."""
        try:
            answer = subprocess.run(['systemctl', 'show', '--property', 'MainPID', '--value', self.settings['patroni_unit']],
                                    capture_output=True, text=True, check=False, timeout=ANSWER_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            return ''
        return answer.stdout.strip()

    def leader_answer(self):
        """(status, body) of Patroni's GET /leader; (None, {}) when it does not answer."""
        try:
            with urllib.request.urlopen(self.settings['leader_url'], timeout=ANSWER_TIMEOUT_SECONDS,
                                        context=self.context) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (OSError, ValueError):
            return None, {}
        try:
            body = json.loads(raw.decode() or '{}')
        except ValueError:
            body = {}
        return status, body if isinstance(body, dict) else {}

    def stop_postgresql(self, reason):
        """SIGINT to the postmaster named in postmaster.pid, when it is one; whether it was sent."""
        try:
            with open(os.path.join(self.settings['data_directory'], 'postmaster.pid')) as handle:
                pid = int(handle.readline())
            with open('/proc/%d/comm' % pid) as handle:
                if handle.read().strip() != 'postgres':
                    log('not stopping PostgreSQL (%s): process %d named in postmaster.pid is not a postmaster'
                        % (reason, pid))
                    return False
            os.kill(pid, signal.SIGINT)
        except (OSError, ValueError) as error:
            log('could not stop PostgreSQL (%s): %s' % (reason, error))
            return False
        log('stopped PostgreSQL (fast shutdown of postmaster %d): %s; Patroni starts it again as a replica '
            'once etcd answers' % (pid, reason))
        return True

    def check(self):
        """One round; what it found, in a word (tests read it)."""
        state = self.local_state()
        if state is None:
            self.armed_for = None
            return 'postgresql not answering'
        in_recovery, started = state
        if in_recovery:
            self.armed_for = None
            return 'not primary'
        patroni = self.patroni_process()
        if patroni in ('', '0'):
            return 'patroni not running'
        status, body = self.leader_answer()
        if status is None:
            return 'patroni not answering'
        if body.get('pause'):
            return 'paused'
        if status == 200:
            if self.armed_for != (started, patroni):
                log('watching: the primary started at %s holds the leader key (Patroni process %s)' % (started, patroni))
            self.armed_for = (started, patroni)
            return 'leader'
        if status != 503:
            return 'unexpected answer %s' % status
        if self.armed_for != (started, patroni):
            return 'not armed'
        self.armed_for = None
        if self.stop_postgresql('Patroni (process %s) no longer holds the leader key' % patroni):
            return 'fenced'
        return 'fence failed'

    def run(self):
        interval = float(self.settings['interval'])
        log('started: asks %s every %s s while this member is a primary' % (self.settings['leader_url'], interval))
        while True:
            self.check()
            time.sleep(interval)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('config', help='the JSON settings the patroni role writes')
    parser.add_argument('--once', action='store_true', help='one round, print what it found')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        fence = LeaderFence(json.load(handle))
    if args.once:
        print(fence.check())
        return 0
    fence.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
