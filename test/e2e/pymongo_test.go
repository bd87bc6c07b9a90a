package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/internal/testutil"
)

// pymongoReader reads run 1 as Python Sacred's ecosystem does with pymongo
// and gridfs: Incense's and Sacred's own loaders (the run document, the
// metrics collection through info.metrics, artifacts and sources through
// GridFS by file_id), and MongoObserver.save_sources' lookup of an
// existing source, fs.find_one({"filename": ..., "md5": ...}), which must
// find the file sacred stored, or a later Python run uploads it again
// (issue 8 item 32). It prints "ok" or what is wrong.
const pymongoReader = `import datetime, hashlib, sys
import gridfs, pymongo

uri, dbname, script, artifact = sys.argv[1:5]
db = pymongo.MongoClient(uri, serverSelectionTimeoutMS=20000)[dbname]
fs = gridfs.GridFS(db)
problems = []
def check(cond, what):
    if not cond:
        problems.append(what)

run = db.runs.find_one({"_id": 1})
check(run is not None, "no run 1")
if run is None:
    print("; ".join(problems)); sys.exit(1)
check(run["status"] == "COMPLETED", "status %r" % run["status"])
for k in ("start_time", "stop_time", "heartbeat"):
    check(isinstance(run[k], datetime.datetime), "%s is %r" % (k, type(run[k])))
check(run["stop_time"] >= run["start_time"], "stop_time before start_time")
check(run["result"] == 0.93, "result %r" % run["result"])
check(run["config"].get("lr") == 0.1, "config %r" % run["config"])
check("Starting training\n" in run["captured_out"], "captured_out %r" % run["captured_out"][:200])
check(run["experiment"]["name"] == "pymongo-e2e", "experiment name %r" % run["experiment"]["name"])

# Metrics: info.metrics points at the metrics documents (Incense, Omniboard).
ptrs = {m["name"]: m["id"] for m in run["info"]["metrics"]}
check(sorted(ptrs) == ["loss"], "info.metrics %r" % run["info"]["metrics"])
for name, mid in ptrs.items():
    m = db.metrics.find_one({"_id": pymongo.collection.ObjectId(mid)})
    check(m is not None and m["run_id"] == 1 and m["name"] == name, "metrics document %r" % m)
    if m:
        check(m["steps"] == [0, 1] and m["values"] == [0.5, 0.25], "loss steps %r values %r" % (m["steps"], m["values"]))
        check(all(isinstance(x, datetime.datetime) for x in m["timestamps"]), "timestamps %r" % m["timestamps"])

# Artifacts: GridFS files by file_id.
arts = {a["name"]: a["file_id"] for a in run["artifacts"]}
check(list(arts) == ["model.txt"], "artifacts %r" % run["artifacts"])
if "model.txt" in arts:
    check(fs.get(arts["model.txt"]).read() == open(artifact, "rb").read(), "artifact bytes differ")

# Sources: [name, file_id] pairs; the GridFS file carries filename and md5
# as MongoObserver.save_sources looks them up.
content = open(script, "rb").read()
md5 = hashlib.md5(content).hexdigest()
# FerretDB 1.x refuses arrays in arrays, so on it sacred stores each pair
# as {"0": name, "1": file_id} (docs/observers/mongo.md); MongoDB gets
# Sacred's [name, file_id].
pair = lambda s: (s["0"], s["1"]) if isinstance(s, dict) else (s[0], s[1])
srcs = dict(pair(s) for s in run["experiment"]["sources"])
check("train.sh" in srcs, "sources %r" % run["experiment"]["sources"])
if "train.sh" in srcs:
    check(fs.get(srcs["train.sh"]).read() == content, "source bytes differ")
    found = fs.find_one({"filename": script, "md5": md5})
    check(found is not None, "fs.find_one(filename=%r, md5=%r) found nothing" % (script, md5))
    if found is not None:
        check(found._id == srcs["train.sh"], "find_one found %r, the run names %r" % (found._id, srcs["train.sh"]))
print("; ".join(problems) if problems else "ok")
sys.exit(1 if problems else 0)
`

// TestMongoReadByPymongo: a run recorded by the binary with -m is read by
// Python's pymongo and gridfs the way Sacred's ecosystem reads runs, and
// Python Sacred's source lookup finds the source sacred stored.
func TestMongoReadByPymongo(t *testing.T) {
	py := testutil.PythonWith(t, "import pymongo, gridfs", "python3-pymongo")
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	dbname := "e2e_pymongo"
	c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	if err := c.Database(dbname).Drop(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Database(dbname).Drop(context.Background()) })
	dir := t.TempDir()
	script := `set -e
echo "Starting training"
sacred log metric loss 0.5
sacred log metric loss 0.25
echo weights > model.txt
sacred log artifact model.txt
sacred log result 0.93
`
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-n", "pymongo-e2e", "-m", base+"/"+dbname, "with", "lr=0.1", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	out, err := exec.Command(py, "-c", pymongoReader, base+"/", dbname,
		filepath.Join(dir, "train.sh"), filepath.Join(dir, "model.txt")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("pymongo read: %v\n%s", err, out)
	}
}
