"""jsonrpcserver and jsonrpcclient (PyPI) against birpc, one JSON message a line (JSON Lines).

    python peer.py client HOST PORT   connects to an interop server's tcp:// address and drives it;
                                      exits 0 when every check passed
    python peer.py server             serves over this process's stdin and stdout (spawned by birpc)

Both sides answer the other's requests: a line that holds a request goes to jsonrpcserver's dispatch, one
that holds a response is the answer awaited.
"""

import json
import socket
import sys

from jsonrpcclient import Error as ClientError
from jsonrpcclient import Ok, parse, request
from jsonrpcserver import Error, Success, dispatch, method


class Lines:
    """A line-delimited JSON-RPC connection over a reader and a writer of text."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    def send(self, message):
        self.writer.write(json.dumps(message, separators=(",", ":")) + "\n")
        self.writer.flush()

    def call(self, name, params=None):
        """Sends a request and returns its parsed answer, answering the other side's requests meanwhile."""
        sent = request(name, params=params) if params is not None else request(name)
        self.send(sent)
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("the connection ended before the answer")
            if not line.strip():
                continue
            message = json.loads(line)
            if isinstance(message, dict) and "method" in message:
                answer = dispatch(line, context=self)
                if answer:
                    self.writer.write(answer + "\n")
                    self.writer.flush()
                continue
            if message.get("id") == sent["id"]:
                return parse(message)


# What the Python side exports (to birpc's client when it serves, to the interop server when it calls).
@method
def whoami(context) -> Success:
    return Success("python")


@method
def add(context, a, b):
    return Success(a + b)


@method
def fail(context):
    return Error(-32050, "failed on purpose", {"n": 1})


@method
def ask_back(context):
    # Calls birpc back before answering.
    answer = context.call("whoami")
    if not isinstance(answer, Ok):
        return Error(-32000, "whoami failed")
    return Success("python asked " + answer.result)


@method
def note(context, *params):
    # A notification; told back as one.
    context.send({"jsonrpc": "2.0", "method": "noted", "params": list(params)})
    return Success(None)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def client(host, port):
    with socket.create_connection((host, int(port))) as sock:
        stream = sock.makefile("rw", encoding="utf-8", newline="\n")
        connection = Lines(stream, stream)
        answer = connection.call("subtract", [42, 23])
        check(isinstance(answer, Ok) and answer.result == 19, f"subtract: {answer}")
        answer = connection.call("sum", {"a": 1, "b": 2, "c": 3})
        check(isinstance(answer, Ok) and answer.result == 6, f"sum: {answer}")
        # birpc calls this side back while answering.
        answer = connection.call("ask_client", {"method": "whoami"})
        check(isinstance(answer, Ok) and answer.result == "python", f"ask_client: {answer}")
        # This side's error object reaches birpc and comes back unchanged.
        answer = connection.call("ask_client", {"method": "fail"})
        check(
            isinstance(answer, ClientError) and answer.code == -32050 and answer.data == {"n": 1},
            f"ask_client fail: {answer}",
        )
        answer = connection.call("no_such_method")
        check(isinstance(answer, ClientError) and answer.code == -32601, f"no_such_method: {answer}")
        answer = connection.call("echo", [{"nested": [1, None, "é"]}])
        check(isinstance(answer, Ok) and answer.result == {"nested": [1, None, "é"]}, f"echo: {answer}")
    print("python client: ok")


def server():
    connection = Lines(sys.stdin, sys.stdout)
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = dispatch(line, context=connection)
        if answer:
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        client(sys.argv[2], sys.argv[3])
    elif sys.argv[1:] == ["server"]:
        server()
    else:
        sys.exit(__doc__)
