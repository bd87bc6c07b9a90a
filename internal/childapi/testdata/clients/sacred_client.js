const net = require("net"), path = require("path");
class Sacred { // reports to the sacred run this process is part of ($SACRED_SOCKET)
  constructor() {
    this.sock = net.createConnection(process.env.SACRED_SOCKET); this.waiting = []; this.buf = "";
    this.sock.on("data", (d) => { this.buf += d; for (let i; (i = this.buf.indexOf("\n")) >= 0; this.waiting.shift()()) this.buf = this.buf.slice(i + 1); });
  }
  send(msg) { this.sock.write(JSON.stringify(msg) + "\n"); }
  sync() { return new Promise((done) => { this.waiting.push(done); this.send({ kind: "sync" }); }); } // resolves once all sent is processed
  metric(name, value, step) { this.send(step === undefined ? { kind: "metric", name, value } : { kind: "metric", name, value, step }); }
  info(key, value) { this.send({ kind: "info", key, value }); }
  result(value) { this.send({ kind: "result", value }); }
  artifact(p, name = path.basename(p)) { this.send({ kind: "artifact", path: path.resolve(p), name }); return this.sync(); } // copied when resolved
  resource(p) { this.send({ kind: "resource", path: path.resolve(p) }); }
  close() { return this.sync().then(() => new Promise((done) => this.sock.end(done))); }
}
