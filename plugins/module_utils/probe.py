# -*- coding: utf-8 -*-
# Copyright: pgha.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write probe: measure a failover from a client's point of view.

A writer inserts one row per transaction through the write endpoint every
``interval_ms`` and records every acknowledged id. After the run the ids are
compared with what the primary really holds (RPO), the longest gap between
acknowledged writes gives the RTO. Optional side threads watch every node for
split brain and count stale reads through a read endpoint.

Everything talks to libpq through ``psycopg.pq`` in non-blocking mode with an
explicit deadline on every connect and every statement: a frozen server (for
example a paused container, whose kernel still acknowledges TCP) cannot hold
the probe beyond its bounds. Nothing here needs Ansible::

    probe = WriteProbe(ProbeConfig(dsn='host=a,b port=5432 target_session_attrs=read-write',
                                   password='...', duration=30))
    result = probe.run()
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import os
import random
import re
import select
import threading
import time
import uuid
from array import array

PSYCOPG_IMPORT_ERROR = None
try:
    from psycopg import pq
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    HAS_PSYCOPG = True
except ImportError:
    import traceback
    pq = None
    conninfo_to_dict = make_conninfo = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

DURATION_RANGE = (1, 3600)
INTERVAL_MS_RANGE = (1, 60000)
CONNECT_TIMEOUT_RANGE = (0.1, 60)
WRITE_TIMEOUT_RANGE = (0.1, 600)
SPLIT_BRAIN_INTERVAL_MS_RANGE = (10, 60000)
STALE_READ_BOUND_MS_RANGE = (0, 3600000)
START_TIMEOUT_RANGE = (0, 60)
START_RETRY_PAUSE = 0.5  # seconds between two preflight attempts within start_timeout
# Lists of ids and split-brain episodes in the result are capped; counts are not.
REPORT_CAP = 100
VERIFY_TIMEOUT = 30.0
MESSAGE_MAX = 300
APPLICATION_NAME = 'pgha-write-probe'

TABLE_PART_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')
RUN_ID_RE = re.compile(r'^[A-Za-z0-9_.:-]{1,64}$')

# Error classes, also the keys of the ``errors`` counters.
CONNECT = 'connect'
CONNECTION_LOST = 'connection_lost'
READ_ONLY = 'read_only'
TIMEOUT = 'timeout'
OTHER = 'other'
ERROR_CLASSES = (CONNECT, CONNECTION_LOST, READ_ONLY, TIMEOUT, OTHER)


class ProbeConfigError(ValueError):
    """Bad input, detected before anything is written."""


class ProbeError(Exception):
    """A failed connection or statement, classified for the error counters."""

    def __init__(self, kind, message, sqlstate=None):
        super(ProbeError, self).__init__(message)
        self.kind = kind
        self.message = message
        self.sqlstate = sqlstate


def _text(value):
    if value is None:
        return ''
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    return ' '.join(value.split())[:MESSAGE_MAX]


def _in_range(name, value, bounds, unit=''):
    low, high = bounds
    if value is None or not low <= value <= high:
        raise ProbeConfigError('%s must be between %s and %s%s, got %r' % (name, low, high, unit, value))
    return value


def quote_table(table):
    """Validate ``name`` or ``schema.name`` (lower case) and return it quoted."""
    parts = table.split('.') if isinstance(table, str) else []
    if not 1 <= len(parts) <= 2 or not all(TABLE_PART_RE.match(p) for p in parts):
        raise ProbeConfigError('table must be a lower-case identifier, optionally schema-qualified '
                               '(letters, digits, underscores; e.g. pgha_write_probe), got %r' % (table,))
    return '.'.join('"%s"' % p for p in parts)


class Endpoint:
    """A libpq DSN split into one connection attempt per host.

    libpq only enforces ``connect_timeout`` in blocking mode, and in
    non-blocking mode it cannot be told to give up one host and try the
    next, so the hosts of a multi-host DSN are tried one by one here, each
    under its own deadline, in the order libpq would use.
    """

    def __init__(self, dsn, password=None, option='dsn', defaults=None):
        if not HAS_PSYCOPG:
            raise ProbeConfigError('psycopg (version 3) is required')
        if not isinstance(dsn, str) or not dsn.strip():
            raise ProbeConfigError('%s must be a non-empty libpq connection string' % option)
        try:
            params = dict((k, str(v)) for k, v in conninfo_to_dict(dsn).items())
        except Exception:
            # libpq's parse error can quote fragments of the string, password included.
            raise ProbeConfigError('%s is not a valid libpq connection string (key=value pairs or a '
                                   'postgresql:// URI)' % option)
        if 'password' in params:
            raise ProbeConfigError('%s must not contain a password: pass it with the password option '
                                   '(no_log) or a .pgpass file' % option)
        self.option = option
        self.dsn = dsn
        self.params = params
        self.shuffle = params.pop('load_balance_hosts', None) == 'random'
        common = dict(params)
        hosts = common.pop('host', '').split(',')
        hostaddrs = common.pop('hostaddr', '').split(',')
        ports = common.pop('port', '').split(',')
        count = max(len(hosts), len(hostaddrs))
        if hosts == ['']:
            hosts = [''] * count
        if hostaddrs == ['']:
            hostaddrs = [''] * count
        if len(ports) == 1:
            ports = ports * count
        if not len(hosts) == len(hostaddrs) == len(ports) == count:
            raise ProbeConfigError('%s lists %d hosts, %d hostaddrs and %d ports: give one port or one '
                                   'per host' % (option, len(hosts), len(hostaddrs), len(ports)))
        common.setdefault('application_name', APPLICATION_NAME)
        for key, value in (defaults or {}).items():
            common.setdefault(key, value)
        if password:
            common['password'] = password
        self.attempts = []
        for host, hostaddr, port in zip(hosts, hostaddrs, ports):
            attempt = dict(common)
            for key, value in (('host', host), ('hostaddr', hostaddr), ('port', port)):
                if value:
                    attempt[key] = value
            label = '%s:%s' % (host or hostaddr or 'local', port or '5432')
            self.attempts.append((label, attempt))
        self.label = ','.join(label for label, dummy in self.attempts)

    def ordered_attempts(self):
        attempts = list(self.attempts)
        if self.shuffle:
            random.shuffle(attempts)
        return attempts


def _wait_socket(pgconn, write, limit):
    """Wait until libpq's socket is ready; False when ``limit`` passed first."""
    remaining = limit - time.monotonic()
    if remaining <= 0:
        return False
    sock = pgconn.socket
    if write:
        ready = select.select([], [sock], [], remaining)[1]
    else:
        ready = select.select([sock], [], [], remaining)[0]
    return bool(ready)


def _classify(sqlstate, pgconn):
    if sqlstate == '25006':
        return READ_ONLY
    if pgconn.status == pq.ConnStatus.BAD or sqlstate.startswith('08') or sqlstate in ('57P01', '57P02', '57P03'):
        return CONNECTION_LOST
    return OTHER


class Session:
    """One libpq connection; every call is bounded by a deadline."""

    def __init__(self, pgconn, label):
        self.pgconn = pgconn
        self.label = label

    @classmethod
    def open(cls, endpoint, timeout):
        errors = []
        for label, params in endpoint.ordered_attempts():
            limit = time.monotonic() + timeout
            pgconn = pq.PGconn.connect_start(make_conninfo('', **params).encode('utf-8'))
            try:
                cls._poll_connect(pgconn, limit, timeout)
            except ProbeError as exc:
                pgconn.finish()
                errors.append('%s: %s' % (label, exc.message) if len(endpoint.attempts) > 1 else exc.message)
                continue
            pgconn.nonblocking = 1
            return cls(pgconn, label)
        raise ProbeError(CONNECT, _text('; '.join(errors) or 'no host to connect to'))

    @staticmethod
    def _poll_connect(pgconn, limit, timeout):
        status = pq.PollingStatus.WRITING  # what libpq documents as the starting state
        while True:
            if pgconn.status == pq.ConnStatus.BAD or status == pq.PollingStatus.FAILED:
                raise ProbeError(CONNECT, _text(pgconn.error_message) or 'connection failed')
            if status == pq.PollingStatus.OK:
                return
            try:
                ready = _wait_socket(pgconn, status == pq.PollingStatus.WRITING, limit)
            except Exception as exc:  # socket gone between polls
                raise ProbeError(CONNECT, _text(str(exc)))
            if not ready:
                raise ProbeError(CONNECT, 'timeout expired after %gs' % timeout)
            status = pgconn.connect_poll()

    def query(self, sql, params=None, limit=None):
        """Run one statement; return its rows as lists of str/None."""
        pgconn = self.pgconn
        try:
            if params is None:
                pgconn.send_query(sql)
            else:
                pgconn.send_query_params(sql, [None if p is None else str(p).encode('utf-8') for p in params])
            while pgconn.flush():
                if not _wait_socket(pgconn, True, limit):
                    raise ProbeError(TIMEOUT, 'could not send the statement in time')
            results = []
            while True:
                pgconn.consume_input()
                while not pgconn.is_busy():
                    result = pgconn.get_result()
                    if result is None:
                        return self._rows(results)
                    results.append(result)
                if not _wait_socket(pgconn, False, limit):
                    raise ProbeError(TIMEOUT, 'no answer before the deadline')
        except ProbeError:
            raise
        except Exception as exc:  # libpq reports a broken connection as OperationalError
            raise ProbeError(CONNECTION_LOST, _text(pgconn.error_message) or _text(str(exc)))

    def _rows(self, results):
        rows = []
        for result in results:
            if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                for row in range(result.ntuples):
                    rows.append([None if v is None else v.decode('utf-8') for v in
                                 (result.get_value(row, col) for col in range(result.nfields))])
            else:
                sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b'').decode('ascii')
                raise ProbeError(_classify(sqlstate, self.pgconn), _text(result.error_message), sqlstate or None)
        return rows

    def close(self):
        try:
            self.pgconn.finish()
        except Exception:
            pass


class ProbeConfig:
    """Validated probe settings; raises ProbeConfigError naming the bad option."""

    def __init__(self, dsn, duration, password=None, interval_ms=10, connect_timeout=1.0, write_timeout=2.0,
                 table='pgha_write_probe', run_id=None, fault_at=None, fault_marker_file=None,
                 verify_dsns=None, split_brain_dsns=None, split_brain_interval_ms=200, read_dsn=None,
                 stale_read_bound_ms=1000, create_table=True, cleanup=False, start_timeout=0):
        self.duration = float(_in_range('duration', duration, DURATION_RANGE, ' seconds'))
        self.interval_ms = _in_range('interval_ms', interval_ms, INTERVAL_MS_RANGE)
        self.connect_timeout = float(_in_range('connect_timeout', connect_timeout, CONNECT_TIMEOUT_RANGE, ' seconds'))
        self.write_timeout = float(_in_range('write_timeout', write_timeout, WRITE_TIMEOUT_RANGE, ' seconds'))
        self.split_brain_interval_ms = _in_range('split_brain_interval_ms', split_brain_interval_ms,
                                                 SPLIT_BRAIN_INTERVAL_MS_RANGE)
        self.stale_read_bound_ms = _in_range('stale_read_bound_ms', stale_read_bound_ms, STALE_READ_BOUND_MS_RANGE)
        self.start_timeout = float(_in_range('start_timeout', start_timeout, START_TIMEOUT_RANGE, ' seconds'))
        self.table = table
        self.quoted_table = quote_table(table)
        if run_id is None:
            run_id = time.strftime('%Y%m%dT%H%M%S') + '-' + uuid.uuid4().hex[:8]
        if not RUN_ID_RE.match(str(run_id)):
            raise ProbeConfigError('run_id must be 1 to 64 letters, digits or "_.:-", got %r' % (run_id,))
        self.run_id = str(run_id)
        if fault_at is not None and fault_marker_file:
            raise ProbeConfigError('fault_at and fault_marker_file are mutually exclusive')
        self.fault_at = None if fault_at is None else float(fault_at)
        self.fault_marker_file = fault_marker_file or None
        self.create_table = bool(create_table)
        self.cleanup = bool(cleanup)
        defaults = {}
        if HAS_PSYCOPG and pq.version() >= 120000:
            # Lets the kernel drop a connection whose data goes unacknowledged (silent partition).
            defaults['tcp_user_timeout'] = str(int(self.write_timeout * 1000))
        self.endpoint = Endpoint(dsn, password, 'dsn', defaults)
        self.verify_endpoints = [Endpoint(d, password, 'verify_dsns[%d]' % i, defaults)
                                 for i, d in enumerate(verify_dsns or [])]
        self.split_brain_endpoints = [Endpoint(d, password, 'split_brain_dsns[%d]' % i, defaults)
                                      for i, d in enumerate(split_brain_dsns or [])]
        if len(self.split_brain_endpoints) == 1:
            raise ProbeConfigError('split_brain_dsns needs the direct DSN of every node (at least two)')
        self.read_endpoint = Endpoint(read_dsn, password, 'read_dsn', defaults) if read_dsn else None

    def settings(self):
        """Every setting that shapes the numbers, to report beside them."""
        return dict(
            endpoint=self.endpoint.dsn, duration=self.duration, interval_ms=self.interval_ms,
            connect_timeout=self.connect_timeout, write_timeout=self.write_timeout, table=self.table,
            tcp_user_timeout=self.endpoint.attempts[0][1].get('tcp_user_timeout'),
            split_brain_interval_ms=self.split_brain_interval_ms if self.split_brain_endpoints else None,
            stale_read_bound_ms=self.stale_read_bound_ms if self.read_endpoint else None,
            verify_nodes=[e.label for e in self.verify_endpoints],
            split_brain_nodes=[e.label for e in self.split_brain_endpoints],
            read_endpoint=self.read_endpoint.dsn if self.read_endpoint else None,
            start_timeout=self.start_timeout, report_cap=REPORT_CAP,
        )


class WriteProbe:
    """Run the measurement: ``preflight()`` (optional), then ``run()``."""

    def __init__(self, config):
        self.config = config
        table = config.quoted_table
        self._sql_insert = ('INSERT INTO %s (run_id, id, client_ts) VALUES ($1, $2, $3)' % table).encode()
        self._sql_max = ('SELECT max(id) FROM %s WHERE run_id = $1' % table).encode()
        self._session = None
        self._prepared = False
        self.warnings = []
        self.endpoint_node = None
        self.table_created = False
        self.start_attempts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_id = 1
        self._attempts = 0
        self._acked_ids = array('q')
        self._acked_mono = array('d')
        self._failed_ids = array('q')
        self._fail_mono = array('d')
        self._errors = dict((k, 0) for k in ERROR_CLASSES)
        self._first_error = self._last_error = None
        self._split_brain = []
        self._split_brain_count = 0
        self._split_brain_rounds = 0
        self._writable_last_seen = {}
        self._reads = dict(attempts=0, succeeded=0, errors=0, stale=0)
        self._stale_mono = array('d')   # when each stale read was sent
        self._start_mono = self._start_wall = self._end = None

    def acknowledged_ids(self):
        """A snapshot of the acknowledged ids so far (safe while running)."""
        with self._lock:
            return list(self._acked_ids)

    # -- before the run --------------------------------------------------
    def _open_checked(self):
        cfg = self.config
        session = Session.open(cfg.endpoint, cfg.connect_timeout)
        try:
            in_recovery = session.query(b'SELECT pg_is_in_recovery()', limit=time.monotonic() + VERIFY_TIMEOUT)
            if in_recovery[0][0] == 't':
                raise ProbeConfigError('dsn leads to a standby (%s): point it at the primary or the write endpoint, '
                                       'or add target_session_attrs=read-write' % session.label)
            exists = session.query(b'SELECT to_regclass($1) IS NOT NULL', [cfg.quoted_table],
                                   limit=time.monotonic() + VERIFY_TIMEOUT)[0][0] == 't'
        except BaseException:
            session.close()
            raise
        self.endpoint_node = session.label
        return session, exists

    def check(self):
        """Check mode: reach the endpoint, write nothing."""
        self._check_marker_absent()
        session, exists = self._open_checked()
        session.close()
        return dict(endpoint_node=self.endpoint_node, table_exists=exists)

    def _check_marker_absent(self):
        marker = self.config.fault_marker_file
        if marker and os.path.lexists(marker):
            raise ProbeConfigError('fault_marker_file %s already exists (left from an earlier drill?): remove it '
                                   'before starting the probe' % marker)

    def preflight(self):
        """Fail early (ProbeConfigError/ProbeError) instead of measuring garbage.

        A connection or statement error is tried again for up to start_timeout
        seconds: a balancer that restarts its workers (Pgpool-II after a node
        is attached) closes the first sessions it hands out. Bad input is not.
        """
        self._check_marker_absent()
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            self.start_attempts += 1
            try:
                self._check_endpoint_and_table()
                return
            except ProbeError:
                if time.monotonic() + START_RETRY_PAUSE > deadline:
                    raise
            time.sleep(START_RETRY_PAUSE)

    def _check_endpoint_and_table(self):
        cfg = self.config
        session, exists = self._open_checked()
        limit = time.monotonic() + VERIFY_TIMEOUT
        try:
            # One transaction that starts with a statement a load balancer in front
            # (Pgpool-II) sends to the primary only: it then keeps the reads of the
            # transaction there too, not on a standby that may lack the table (not
            # replayed yet, or not following).
            session.query(b'BEGIN', limit=limit)
            if cfg.create_table:
                session.query(('CREATE TABLE IF NOT EXISTS %s (run_id text, id bigint, client_ts double precision, '
                               'PRIMARY KEY (run_id, id))' % cfg.quoted_table).encode(), limit=limit)
                # as seen at connect time, possibly through a load-balanced read
                self.table_created = not exists
            elif not exists:
                raise ProbeConfigError('table %s does not exist and create_table is false' % cfg.table)
            try:
                session.query(('SELECT run_id, id, client_ts FROM %s LIMIT 0' % cfg.quoted_table).encode(), limit=limit)
            except ProbeError as exc:
                raise ProbeConfigError('table %s is not usable by the probe (%s): drop it or choose another '
                                       'table' % (cfg.table, exc.message))
            if session.query(('SELECT 1 FROM %s WHERE run_id = $1 LIMIT 1' % cfg.quoted_table).encode(),
                             [cfg.run_id], limit=limit):
                raise ProbeConfigError('table %s already holds rows of run_id %s: choose another run_id'
                                       % (cfg.table, cfg.run_id))
            session.query(b'COMMIT', limit=limit)
        except BaseException:
            session.close()
            raise
        self._session = session
        self._prepared = True

    # -- the run ---------------------------------------------------------
    def run(self):
        if self._start_mono is not None:
            raise RuntimeError('a WriteProbe measures once: create a new one for the next run')
        if not self._prepared:
            self.preflight()
        cfg = self.config
        self._start_wall = time.time()
        self._start_mono = time.monotonic()
        self._end = self._start_mono + cfg.duration
        threads = []
        if cfg.split_brain_endpoints:
            threads.append(threading.Thread(target=self._guard(self._watch_split_brain), name='split-brain'))
        if cfg.read_endpoint:
            threads.append(threading.Thread(target=self._guard(self._watch_reads), name='stale-reads'))
        for thread in threads:
            thread.daemon = True  # never keep the process alive past its report
            thread.start()
        try:
            self._write_loop()
        finally:
            self._stop.set()
            if self._session is not None:
                self._session.close()
                self._session = None
        for thread in threads:
            thread.join(cfg.connect_timeout * 4 + cfg.write_timeout + 1)
        ended_mono = time.monotonic()
        fault_time, fault_source = self._fault_time()
        verification = self._verify()
        return self._report(ended_mono, fault_time, fault_source, verification)

    def _guard(self, target):
        def wrapper():
            try:
                target()
            except Exception as exc:  # a side thread must not print a traceback or end the run
                self.warnings.append('%s thread stopped: %s' % (threading.current_thread().name, _text(str(exc))))
        return wrapper

    def _write_loop(self):
        cfg = self.config
        interval = cfg.interval_ms / 1000.0
        run_id = cfg.run_id
        session = self._session
        next_tick = self._start_mono
        while True:
            now = time.monotonic()
            if now >= self._end:
                break
            if now < next_tick:
                time.sleep(min(next_tick, self._end) - now)
                continue
            # After a slow attempt the next one starts at once: no catch-up burst.
            next_tick = max(next_tick + interval, now)
            self._attempts += 1
            if session is None:
                try:
                    # An attempt started before the end gets its whole timeout: cut off
                    # by the probe's own clock it would count as the cluster's error.
                    session = Session.open(cfg.endpoint, cfg.connect_timeout)
                except ProbeError as exc:
                    self._record_error(exc)
                    continue
            ident = self._next_id
            self._next_id += 1
            try:
                session.query(self._sql_insert, (run_id, ident, repr(time.time())),
                              limit=time.monotonic() + cfg.write_timeout)
            except ProbeError as exc:
                self._failed_ids.append(ident)
                self._record_error(exc)
                # Reconnect even on a read-only error: the endpoint must find the new primary.
                session.close()
                session = None
                continue
            acked = time.monotonic()
            with self._lock:
                self._acked_ids.append(ident)
                self._acked_mono.append(acked)
        self._session = session

    def _record_error(self, exc):
        self._errors[exc.kind] += 1
        now = time.monotonic()
        self._fail_mono.append(now)
        entry = dict(time=round(self._wall(now), 6), kind=exc.kind, message=exc.message)
        if self._first_error is None:
            self._first_error = entry
        self._last_error = entry

    def _wall(self, mono):
        # Wall-clock times are derived from one anchor so a clock step cannot bend the gaps.
        return self._start_wall + (mono - self._start_mono)

    def _mono(self, wall):
        return self._start_mono + (wall - self._start_wall)

    def _watch_split_brain(self):
        cfg = self.config
        interval = cfg.split_brain_interval_ms / 1000.0
        sessions = {}
        sql = b"SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')"
        next_round = time.monotonic()
        previous = None
        try:
            while not self._stop.is_set():
                round_mono = time.monotonic()
                writable = []
                for endpoint in cfg.split_brain_endpoints:
                    if self._stop.is_set():
                        return
                    session = sessions.pop(endpoint.label, None)
                    try:
                        if session is None:
                            session = Session.open(endpoint, cfg.connect_timeout)
                        row = session.query(sql, limit=time.monotonic() + cfg.write_timeout)[0]
                    except ProbeError:
                        if session is not None:
                            session.close()
                        continue
                    sessions[endpoint.label] = session
                    if row == ['f', 'off']:
                        writable.append(endpoint.label)
                self._split_brain_rounds += 1
                for label in writable:
                    self._writable_last_seen[label] = round(self._wall(round_mono), 6)
                previous = self._record_split_brain(round_mono, writable, previous)
                next_round = max(next_round + interval, time.monotonic())
                self._stop.wait(next_round - time.monotonic())
        finally:
            for session in sessions.values():
                session.close()

    def _record_split_brain(self, mono, writable, previous):
        """Merge consecutive rounds with the same writable nodes into one episode."""
        if len(writable) < 2:
            return None
        self._split_brain_count += 1
        wall = round(self._wall(mono), 6)
        if previous is not None and previous['nodes'] == writable:
            previous['end'] = wall
            previous['rounds'] += 1
            return previous
        episode = dict(start=wall, end=wall, nodes=writable, rounds=1)
        if len(self._split_brain) < REPORT_CAP:
            self._split_brain.append(episode)
        return episode

    def _watch_reads(self):
        cfg = self.config
        interval = cfg.interval_ms / 1000.0
        bound = cfg.stale_read_bound_ms / 1000.0
        seen_acks = 0
        session = None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                # The newest id whose acknowledgement is older than the bound must be visible.
                with self._lock:
                    count = len(self._acked_mono)
                    while seen_acks < count and self._acked_mono[seen_acks] <= started - bound:
                        seen_acks += 1
                    required = self._acked_ids[seen_acks - 1] if seen_acks else None
                self._reads['attempts'] += 1
                try:
                    if session is None:
                        session = Session.open(cfg.read_endpoint, cfg.connect_timeout)
                    value = session.query(self._sql_max, [cfg.run_id], limit=started + cfg.write_timeout)[0][0]
                except ProbeError:
                    self._reads['errors'] += 1
                    if session is not None:
                        session.close()
                        session = None
                else:
                    self._reads['succeeded'] += 1
                    if required is not None and (value is None or int(value) < required):
                        self._reads['stale'] += 1
                        self._stale_mono.append(started)
                self._stop.wait(max(0.0, started + interval - time.monotonic()))
        finally:
            if session is not None:
                session.close()

    # -- after the run ---------------------------------------------------
    def _fault_time(self):
        cfg = self.config
        if cfg.fault_at is not None:
            return cfg.fault_at, 'fault_at'
        marker = cfg.fault_marker_file
        if not marker:
            return None, None
        try:
            with open(marker) as handle:
                content = handle.read(100).strip()
            mtime = os.stat(marker).st_mtime
        except (IOError, OSError):
            self.warnings.append('fault_marker_file %s did not appear during the run: no fault time' % marker)
            return None, None
        try:
            return float(content), 'marker_content'
        except ValueError:
            return mtime, 'marker_mtime'

    def _verify(self):
        """Read the ids back from the primary itself, never through a balancer."""
        cfg = self.config
        endpoints = cfg.verify_endpoints or [cfg.endpoint]
        if not cfg.verify_endpoints:
            self.warnings.append('verify_dsns not set: the lost-write check reads through dsn; a balancer there '
                                 'could route it to a stale node')
        primaries, errors = [], []
        sql = (b'SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() '
               b'THEN substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END')
        for endpoint in endpoints:
            try:
                session = Session.open(endpoint, cfg.connect_timeout)
            except ProbeError as exc:
                errors.append(dict(node=endpoint.label, error=exc.message))
                continue
            try:
                row = session.query(sql, limit=time.monotonic() + VERIFY_TIMEOUT)[0]
            except ProbeError as exc:
                errors.append(dict(node=session.label, error=exc.message))
                session.close()
                continue
            if row[0] == 'f':
                primaries.append((int(row[1], 16), len(primaries), session))
            else:
                session.close()
        outcome = dict(errors=errors, verified=False, primary=None, timeline=None, present=None, dropped=False)
        if not primaries:
            self.warnings.append('no primary found among the verify nodes: lost writes not checked')
            return outcome
        # With several primaries at the end the newest timeline is the one clients should follow.
        primaries.sort(key=lambda p: (-p[0], p[1]))
        if len(primaries) > 1:
            self.warnings.append('several nodes were primary at the end (%s): checked %s'
                                 % (', '.join(p[2].label for p in primaries), primaries[0][2].label))
        timeline, dummy, session = primaries[0]
        outcome.update(primary=session.label, timeline=timeline)
        try:
            text = session.query(('SELECT string_agg(id::text, \',\') FROM %s WHERE run_id = $1'
                                  % cfg.quoted_table).encode(), [cfg.run_id],
                                 limit=time.monotonic() + VERIFY_TIMEOUT)[0][0]
            outcome['present'] = set(int(i) for i in text.split(',')) if text else set()
            outcome['verified'] = True
            if cfg.cleanup:
                session.query(('DROP TABLE IF EXISTS %s' % cfg.quoted_table).encode(),
                              limit=time.monotonic() + VERIFY_TIMEOUT)
                outcome['dropped'] = True
        except ProbeError as exc:
            errors.append(dict(node=session.label, error=exc.message))
        for dummy, dummy2, other in primaries:
            other.close()
        return outcome

    def _report(self, ended_mono, fault_time, fault_source, verification):
        cfg = self.config
        acked_ids, acked_mono = self._acked_ids, self._acked_mono
        result = dict(
            run_id=cfg.run_id, endpoint_node=self.endpoint_node, acknowledged=len(acked_ids),
            attempts=self._attempts, start_attempts=self.start_attempts,
            errors=dict(self._errors, total=sum(self._errors.values())),
            first_error=self._first_error, last_error=self._last_error,
            # Not 'started'/'finished': async_status reads those keys as the job's state.
            run_started=round(self._start_wall, 6), run_ended=round(self._wall(ended_mono), 6),
            max_gap=None, max_gap_start=None, max_gap_end=None,
            trailing_gap=round(ended_mono - (acked_mono[-1] if acked_mono else self._start_mono), 4),
            fault_time=fault_time, fault_time_source=fault_source, fault_to_first_write=None,
            verified=verification['verified'], verify_errors=verification['errors'],
            primary_after=verification['primary'], timeline_after=verification['timeline'],
            lost=None, lost_count=None, indeterminate=None, indeterminate_count=None,
            split_brain=self._split_brain, split_brain_count=self._split_brain_count,
            split_brain_rounds=self._split_brain_rounds,
            writable_last_seen=dict(self._writable_last_seen),
            stale_reads=self._reads['stale'] if cfg.read_endpoint else None,
            reads=dict(self._reads) if cfg.read_endpoint else None,
            table_created=self.table_created, cleaned_up=verification['dropped'],
            settings=cfg.settings(),
        )
        if len(acked_mono) >= 2:
            best = max(range(len(acked_mono) - 1), key=lambda i: acked_mono[i + 1] - acked_mono[i])
            result.update(max_gap=round(acked_mono[best + 1] - acked_mono[best], 4),
                          max_gap_start=round(self._wall(acked_mono[best]), 6),
                          max_gap_end=round(self._wall(acked_mono[best + 1]), 6))
        result['stale_reads_after_recovery'] = None
        if fault_time is not None:
            result['fault_to_first_write'] = self._outage_after(fault_time)
            result['stale_reads_after_recovery'] = self._stale_after_recovery(fault_time,
                                                                              result['fault_to_first_write'])
            if not self._start_wall <= fault_time <= result['run_ended']:
                self.warnings.append('fault time %.3f lies outside the run (%.3f to %.3f): check the clocks'
                                     % (fault_time, self._start_wall, result['run_ended']))
        present = verification['present']
        if present is not None:
            acked = set(acked_ids)
            lost = [i for i in acked_ids if i not in present]
            indeterminate = sorted(present - acked)
            result.update(lost=lost[:REPORT_CAP], lost_count=len(lost),
                          indeterminate=indeterminate[:REPORT_CAP], indeterminate_count=len(indeterminate))
        result['changed'] = self._next_id > 1 or self.table_created or verification['dropped']
        return result

    def _stale_after_recovery(self, fault_time, outage):
        """Stale reads sent later than stale_read_bound_ms after writes came back from the fault.

        Within the outage and up to the bound after it a read may miss writes
        (a standby still replaying, or a lost write's id, missing everywhere,
        until newer writes land); later, a stale read means the read endpoint
        sends reads to a member that does not follow the new primary.
        """
        cfg = self.config
        if not cfg.read_endpoint:
            return None
        if outage is None:   # writes never came back: every stale read after the fault counts
            outage = 0.0
        since = self._mono(fault_time) + outage + cfg.stale_read_bound_ms / 1000.0
        return len(self._stale_mono) - bisect.bisect_right(self._stale_mono, since)

    def _outage_after(self, fault_time):
        """Seconds from the fault to the first write acknowledged after the outage it caused.

        The outage starts with the first failed attempt at or after the fault;
        when nothing failed, it is simply the first write acknowledged after it.
        """
        fault_mono = self._mono(fault_time)
        index = bisect.bisect_left(self._fail_mono, fault_mono)
        after = self._fail_mono[index] if index < len(self._fail_mono) else fault_mono
        index = bisect.bisect_right(self._acked_mono, after)
        if index >= len(self._acked_mono):
            return None
        return round(self._acked_mono[index] - fault_mono, 4)
