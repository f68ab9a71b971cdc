"""A TCP listener on loopback that completes every handshake and hangs up, counting them."""
import socket
import threading


class AcceptingListener:
    """Accepts in a daemon thread until close(); `accepted` counts the connections."""

    def __init__(self, address='127.0.0.1', port=0, backlog=16):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(backlog)
        # accept() wakes up this often to see whether close() was called
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while self._running.is_set():
            try:
                conn, unused_address = self.sock.accept()
            except OSError:  # the timeout above, a subclass
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._running.clear()
        self._thread.join()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused_exc):
        self.close()
