import json, os, socket

class Sacred:  # reports to the sacred run this process is part of ($SACRED_SOCKET)
    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(os.environ["SACRED_SOCKET"])
        self.replies = self.sock.makefile("rb")
    def send(self, **msg):
        self.sock.sendall(json.dumps(msg, allow_nan=False).encode() + b"\n")
    def sync(self):  # returns once the run has processed everything sent
        self.send(kind="sync"); self.replies.readline()
    def metric(self, name, value, step=None):
        self.send(kind="metric", name=name, value=value, **({} if step is None else {"step": step}))
    def info(self, key, value): self.send(kind="info", key=key, value=value)
    def result(self, value): self.send(kind="result", value=value)
    def artifact(self, path, name=None):  # copied before this returns
        self.send(kind="artifact", path=os.path.abspath(path), name=name or os.path.basename(path)); self.sync()
    def resource(self, path): self.send(kind="resource", path=os.path.abspath(path))
    def close(self): self.sync(); self.sock.close()
