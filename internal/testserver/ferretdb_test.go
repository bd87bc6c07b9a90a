package testserver

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestFerretDBRestart checks that data survives a stop and a start on the
// same port, which the observer's reconnection tests rely on.
func TestFerretDBRestart(t *testing.T) {
	m := FerretDB(t)
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	coll := c.Database("t").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	addr := m.Addr()
	m.Stop()
	if err := c.Ping(ctxTimeout(t), nil); err == nil {
		t.Fatal("ping succeeded with the server stopped")
	}
	m.Start()
	if m.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", m.Addr(), addr)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("after restart: %d documents, want 1", n)
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	t.Cleanup(cancel)
	return ctx
}
