"""What the e2e stand-in servers (client_standin.py, client_proxy.py) share:
the control file they read per request, the JSON-lines log, and the accept
loop on a free port of 127.0.0.1 that publishes its port atomically."""
import json
import os
import socket
import threading

_log_lock = threading.Lock()


def read_control(path):
    """The control file's JSON object, {} while it is absent or half-written."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def log_line(path, entry):
    """Appends entry as one JSON line; lines of concurrent requests never mix."""
    with _log_lock:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def serve(handle, port_file, backlog):
    """Listens on a free port of 127.0.0.1, writes it to port_file (through a
    rename, so a reader never sees half a number) and runs handle(conn) on a
    thread per connection, for ever."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(tmp, port_file)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
