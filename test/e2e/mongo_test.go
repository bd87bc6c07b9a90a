package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/mongo"
)

// TestMongoThroughBinary runs the real binary with -m against the embedded
// FerretDB (or SACRED_TEST_MONGO_URI) and checks the stored documents
// against Sacred's keys and BSON types.
func TestMongoThroughBinary(t *testing.T) {
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	spec := base + "/e2e_" + strings.ReplaceAll(t.Name(), "/", "_")
	dir := t.TempDir()
	script := `set -e
echo "Starting training"
sacred log metric loss 0.5
sacred log metric loss 0.25
sacred log info foo '"bar"'
echo weights > model.txt
sacred log artifact model.txt
sacred log result 0.93
`
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-m", spec, "--", "sh", "train.sh")
	if r.code != 0 && strings.Contains(r.stderr, "not available in this version") {
		t.Skip("this build of sacred has no MongoDB observer yet (internal/cli must import pkg/observer/mongo)")
	}
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	ctx := context.Background()
	c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db := c.Database("e2e_" + strings.ReplaceAll(t.Name(), "/", "_"))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	raw, err := db.Collection("runs").FindOne(ctx, bson.D{}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	els, _ := raw.Elements()
	var keys []string
	for _, e := range els {
		keys = append(keys, e.Key())
	}
	want := "_id,experiment,format,command,host,start_time,config,meta,status,resources,artifacts,captured_out,info,heartbeat,result,stop_time"
	if got := strings.Join(keys, ","); got != want {
		t.Errorf("keys %s\nwant %s", got, want)
	}
	types := map[string]bson.Type{
		"_id": bson.TypeInt32, "format": bson.TypeString, "start_time": bson.TypeDateTime,
		"heartbeat": bson.TypeDateTime, "stop_time": bson.TypeDateTime, "config": bson.TypeEmbeddedDocument,
		"experiment": bson.TypeEmbeddedDocument, "host": bson.TypeEmbeddedDocument, "meta": bson.TypeEmbeddedDocument,
		"resources": bson.TypeArray, "artifacts": bson.TypeArray, "captured_out": bson.TypeString,
		"info": bson.TypeEmbeddedDocument, "result": bson.TypeDouble,
	}
	for k, ty := range types {
		if got := raw.Lookup(k).Type; got != ty {
			t.Errorf("%s has BSON type %s, want %s", k, got, ty)
		}
	}
	if s := raw.Lookup("status").StringValue(); s != "COMPLETED" {
		t.Errorf("status %s", s)
	}
	if out := raw.Lookup("captured_out").StringValue(); !strings.Contains(out, "Starting training\n") {
		t.Errorf("captured_out %q", out)
	}
	ms, ok := raw.Lookup("info", "metrics").ArrayOK()
	if !ok {
		t.Fatalf("info.metrics missing: %v", raw.Lookup("info"))
	}
	if vs, _ := ms.Values(); len(vs) != 1 {
		t.Errorf("info.metrics %v", ms)
	}
	cfg, err := mongo.ParseConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := mongo.Open(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	run, err := rd.Run(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 2 || len(run.Artifacts) != 1 {
		t.Errorf("metrics %+v artifacts %v", run.Metrics, run.Artifacts)
	}
	// No credentials and no FerretDB in the product binary.
	if strings.Contains(r.stderr, "password") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
