package query

import (
	"testing"

	"github.com/sacred-go/sacred/internal/testserver"
	_ "github.com/sacred-go/sacred/pkg/observer/gcs"
	_ "github.com/sacred-go/sacred/pkg/observer/s3"
	_ "github.com/sacred-go/sacred/pkg/observer/tinydb"
)

func TestFindS3(t *testing.T) {
	srv := testserver.NewS3(t)
	srv.CreateBucket("lab")
	srv.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL())
	write(t, "s3", "s3://lab/runs", len(fixture()))
	findAll(t, "s3", "s3", "s3://lab/runs", len(fixture()), nil)
}

func TestFindGCS(t *testing.T) {
	srv := testserver.NewGCS(t)
	srv.CreateBucket("lab")
	srv.SetEnv(t)
	write(t, "gcs", "gs://lab/runs", len(fixture()))
	findAll(t, "gcs", "gcs", "gs://lab/runs", len(fixture()), nil)
}
