"""The classic chat demos' protocol on chatd's `/`, driven by python-socketio's client.

Usage: demo_client.py URL [polling|default]

Handlers take exactly the arguments of the demos (docs/protocol.md, "Demo compatibility on
/"), as a port of the demo to Python would: `def on_login(data)`. An extra argument (such as a
connection-state-recovery offset) makes the client raise in the handler, the event is lost,
and the wait for it fails. Prints "ok" and exits 0 when every step passed; otherwise prints
what failed to stderr and exits 1.
"""

import queue
import sys

import socketio

WAIT_S = 10


class Failure(Exception):
    pass


class DemoClient:
    """One demo page: a socket, and the events it received in order."""

    def __init__(self, name, url, transports, auth=None):
        self.name = name
        self.events = queue.Queue()
        self.pending = []
        self.sio = socketio.Client(reconnection=False, handle_sigint=False)
        record = self.events.put

        # The classic demo's events: one payload object each.
        def on_login(data):
            record(("login", data))

        def on_user_joined(data):
            record(("user joined", data))

        def on_user_left(data):
            record(("user left", data))

        def on_new_message(data):
            record(("new message", data))

        def on_typing(data):
            record(("typing", data))

        def on_stop_typing(data):
            record(("stop typing", data))

        # The tutorial's: the text and the server's offset.
        def on_chat_message(text, server_offset):
            record(("chat message", [text, server_offset]))

        for event, handler in [
            ("login", on_login),
            ("user joined", on_user_joined),
            ("user left", on_user_left),
            ("new message", on_new_message),
            ("typing", on_typing),
            ("stop typing", on_stop_typing),
            ("chat message", on_chat_message),
        ]:
            self.sio.on(event, handler)
        self.sio.connect(
            url,
            transports=transports,
            auth=auth,
            namespaces=["/"],
            wait_timeout=WAIT_S,
        )

    def emit(self, event, *args, callback=None):
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        self.sio.emit(event, data, callback=callback)

    def expect(self, event, payload):
        """Waits for `event` with `payload`; events of other kinds may come in between (a
        typing event and a stored message travel different paths), but one of the same kind
        must be this one."""
        want = (event, payload)
        for i, got in enumerate(self.pending):
            if got[0] == event:
                del self.pending[i]
                if got != want:
                    raise Failure(f"{self.name}: expected {want!r}, got {got!r}")
                return
        while True:
            try:
                got = self.events.get(timeout=WAIT_S)
            except queue.Empty:
                raise Failure(
                    f"{self.name}: no {want!r} within {WAIT_S} s (other events: {self.pending!r})"
                )
            if got == want:
                return
            if got[0] == event:
                raise Failure(f"{self.name}: expected {want!r}, got {got!r}")
            self.pending.append(got)

    def expect_quiet(self):
        """Nothing else was received."""
        if self.pending or not self.events.empty():
            extra = self.pending or [self.events.get()]
            raise Failure(f"{self.name}: unexpected {extra!r}")

    def close(self):
        self.sio.disconnect()


def run(url, transports):
    clients = []
    try:
        alice = DemoClient("alice", url, transports)
        clients.append(alice)
        bob = DemoClient("bob", url, transports)
        clients.append(bob)

        alice.emit("add user", "alice")
        alice.expect("login", {"numUsers": 1})
        bob.emit("add user", "bob")
        bob.expect("login", {"numUsers": 2})
        alice.expect("user joined", {"username": "bob", "numUsers": 2})

        alice.emit("typing")
        bob.expect("typing", {"username": "alice"})
        alice.emit("new message", "hello from python")
        alice.emit("stop typing")
        bob.expect("new message", {"username": "alice", "message": "hello from python"})
        bob.expect("stop typing", {"username": "alice"})
        bob.emit("new message", "hi alice")
        alice.expect("new message", {"username": "bob", "message": "hi alice"})

        # The tutorial chat: catch-up from serverOffset, then a send with an ack.
        tutor = DemoClient("tutorial", url, transports, auth={"serverOffset": 0})
        clients.append(tutor)
        tutor.expect("chat message", ["hello from python", 1])
        tutor.expect("chat message", ["hi alice", 2])
        acked = queue.Queue()
        tutor.emit(
            "chat message", "from the tutorial", "py-0",
            callback=lambda *args: acked.put(args),
        )
        tutor.expect("chat message", ["from the tutorial", 3])
        try:
            ack_args = acked.get(timeout=WAIT_S)
        except queue.Empty:
            raise Failure("tutorial: no ack")
        if ack_args != ():
            raise Failure(f"tutorial: ack with arguments {ack_args!r}")
        for c in (alice, bob):
            c.expect("new message", {"username": "guest", "message": "from the tutorial"})

        alice.close()
        bob.expect("user left", {"username": "alice", "numUsers": 1})
        for c in clients:
            c.expect_quiet()
    finally:
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    mode = sys.argv[2] if len(sys.argv) == 3 else "default"
    transports = ["polling"] if mode == "polling" else ["polling", "websocket"]
    try:
        run(sys.argv[1], transports)
    except (Failure, socketio.exceptions.ConnectionError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
