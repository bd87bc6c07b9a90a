package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite"

	"github.com/sacred-go/sacred/internal/testserver"
)

// benchRuns is the size of the stores of BenchmarkLs10k.
const benchRuns = 10_000

// BenchmarkLs10k measures `sacred ls` through the binary over stores of
// 10,000 runs (one real run of the read-back script, copied), beside jq
// reading the same run.json files as the anchor. Numbers are in
// docs/performance.md.
func BenchmarkLs10k(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(readTrainScript), 0o644); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("the data set\n"), 0o644)
	sqlite := "sqlite:///" + filepath.Join(dir, "runs.db")
	uri := testserver.MongoURI(b)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	mongoURL := base + "/bench_ls"
	cmd := exec.Command(bin, "run", "-F", "runs", "-t", "tiny", "-s", sqlite, "-m", mongoURL, "with", "lr=0.5", "--", "sh", "train.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), pathWithSacred(), "LOSS0=1", "LOSS2=0.25", "RESULT=0.9")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("sacred run: %v\n%s", err, out)
	}
	copyFileRuns(b, filepath.Join(dir, "runs"))
	copyTinyRuns(b, filepath.Join(dir, "tiny", "metadata.json"))
	copySQLRuns(b, filepath.Join(dir, "runs.db"))
	copyMongoRuns(b, base, "bench_ls")

	ls := func(args ...string) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				c := exec.Command(bin, append([]string{"ls"}, args...)...)
				c.Dir, c.Env = dir, cleanEnv()
				out, err := c.Output()
				if err != nil || strings.Count(string(out), "\n") < 2 {
					b.Fatalf("sacred ls %v: %v %.200s", args, err, out)
				}
			}
		}
	}
	where := []string{"--where", "config.lr > 0.1", "--columns", "config.lr,metrics.loss.last", "--sort", "-result", "--last", "100"}
	b.Run("file", ls("-F", "runs"))
	b.Run("file/where-config-metrics", ls(append([]string{"-F", "runs"}, where...)...))
	if _, err := exec.LookPath("jq"); err == nil {
		b.Run("file/jq-anchor", func(b *testing.B) {
			files, _ := filepath.Glob(filepath.Join(dir, "runs", "*", "run.json"))
			for b.Loop() {
				c := exec.Command("jq", append([]string{"-r", "[.experiment.name, .status, .start_time, .result] | @tsv"}, files...)...)
				if out, err := c.Output(); err != nil || strings.Count(string(out), "\n") != benchRuns {
					b.Fatalf("jq: %v", err)
				}
			}
		})
	}
	b.Run("tinydb", ls("-t", "tiny"))
	b.Run("sqlite", ls("-s", sqlite))
	b.Run("sqlite/where-config-metrics", ls(append([]string{"-s", sqlite}, where...)...))
	b.Run("sqlite/driver-anchor", func(b *testing.B) {
		// The same SELECT through the driver, rows scanned as text: what
		// the database and the driver cost without sacred.
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "runs.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			rows, err := db.Query(`SELECT r.run_id, r.command, r.status, r.start_time, r.heartbeat, r.stop_time, e.name, x.experiment, x.result
				FROM run r LEFT JOIN experiment e ON e.experiment_id = r.experiment_id LEFT JOIN run_extra x ON x.run_id = r.run_id ORDER BY r.id`)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var v [9]sql.NullString
				if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rows.Close()
			if n != benchRuns {
				b.Fatalf("%d rows", n)
			}
		}
	})
	b.Run("mongo/driver-anchor", func(b *testing.B) {
		// One find of every runs document without the output, through the
		// driver: what the server costs without sacred.
		ctx := context.Background()
		c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(ctx)
		coll := c.Database("bench_ls").Collection("runs")
		for b.Loop() {
			cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "captured_out", Value: 0}}))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for cur.Next(ctx) {
				n++
			}
			cur.Close(ctx)
			if n != benchRuns {
				b.Fatalf("%d documents", n)
			}
		}
	})
	b.Run("mongo", ls("-m", mongoURL))
	b.Run("mongo/where-config-metrics", ls(append([]string{"-m", mongoURL}, where...)...))
}

// copyFileRuns copies run 1 of a file store to runs 2..benchRuns, with
// config.lr varied.
func copyFileRuns(b *testing.B, runs string) {
	files := map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(runs, "1"))
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		files[e.Name()], _ = os.ReadFile(filepath.Join(runs, "1", e.Name()))
	}
	for i := 2; i <= benchRuns; i++ {
		d := filepath.Join(runs, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, data := range files {
			if name == "config.json" {
				data = []byte(strings.Replace(string(data), `"lr": 0.5`, fmt.Sprintf(`"lr": %g`, float64(i%100)/100), 1))
			}
			if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// copyTinyRuns rewrites metadata.json with benchRuns copies of its run.
func copyTinyRuns(b *testing.B, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var db struct {
		Runs map[string]map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(data, &db); err != nil {
		b.Fatal(err)
	}
	doc := db.Runs["1"]
	var sb strings.Builder
	sb.WriteString(`{"runs": {`)
	for i := 1; i <= benchRuns; i++ {
		doc["_id"] = fmt.Sprint(i)
		doc["config"].(map[string]any)["lr"] = float64(i%100) / 100
		d, _ := json.Marshal(doc)
		if i > 1 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, `"%d": %s`, i, d)
	}
	sb.WriteString("}}")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// copySQLRuns copies run 1 of an SQLite store (its run, run_extra and
// metric rows) to runs 2..benchRuns.
func copySQLRuns(b *testing.B, path string) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	seq := fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i+1 FROM n WHERE i < %d) ", benchRuns)
	for _, s := range []string{
		seq + `INSERT INTO run (run_id, command, start_time, heartbeat, stop_time, queue_time, priority, comment, fail_trace, captured_out, config, info, status, host_id, experiment_id, result)
			SELECT CAST(i AS TEXT), command, start_time, heartbeat, stop_time, queue_time, priority, comment, fail_trace, captured_out,
			replace(config, '"lr": 0.5', '"lr": ' || (i % 100) / 100.0), info, status, host_id, experiment_id, result FROM n, run WHERE run.run_id = '1'`,
		seq + `INSERT INTO run_extra (run_id, command, experiment, host, meta, result, fail_trace)
			SELECT CAST(i AS TEXT), command, experiment, host, meta, result, fail_trace FROM n, run_extra WHERE run_extra.run_id = '1'`,
		seq + `INSERT INTO metric (run_id, name, seq, step, value, timestamp)
			SELECT CAST(i AS TEXT), name, seq, step, value, timestamp FROM n, metric WHERE metric.run_id = '1'`,
	} {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%v\n%s", err, s)
		}
	}
}

// copyMongoRuns copies run 1 of a MongoDB store (its runs and metrics
// documents) to runs 2..benchRuns.
func copyMongoRuns(b *testing.B, base, name string) {
	ctx := context.Background()
	c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db := c.Database(name)
	b.Cleanup(func() { _ = db.Drop(context.Background()) })
	var run, metric bson.M
	if err := db.Collection("runs").FindOne(ctx, bson.D{}).Decode(&run); err != nil {
		b.Fatal(err)
	}
	if err := db.Collection("metrics").FindOne(ctx, bson.D{{Key: "name", Value: "loss"}}).Decode(&metric); err != nil {
		b.Fatal(err)
	}
	var runs, metrics []any
	for i := 2; i <= benchRuns; i++ {
		r := bson.M{}
		for k, v := range run {
			r[k] = v
		}
		r["_id"] = int32(i)
		cfg := bson.D{}
		for _, e := range run["config"].(bson.D) { // nested documents decode as bson.D
			if e.Key == "lr" {
				e.Value = float64(i%100) / 100
			}
			cfg = append(cfg, e)
		}
		r["config"] = cfg
		runs = append(runs, r)
		m := bson.M{}
		for k, v := range metric {
			m[k] = v
		}
		delete(m, "_id")
		m["run_id"] = int32(i)
		metrics = append(metrics, m)
	}
	if _, err := db.Collection("runs").InsertMany(ctx, runs); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Collection("metrics").InsertMany(ctx, metrics); err != nil {
		b.Fatal(err)
	}
}
