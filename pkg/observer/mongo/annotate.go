package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Notes and tags of runs, in Omniboard's own fields of the runs document
// (omniboard.notes, a string; omniboard.tags, a list of strings), so that
// sacred ui and Omniboard show and edit the same ones.

// idCandidates are the _id values an id given as text may be stored as: a
// decimal id as a number first, then as a string (Sacred's -i).
func idCandidates(id string) []any {
	cands := []any{storedID(id)}
	if _, isStr := cands[0].(string); !isStr {
		cands = append(cands, id)
	}
	return cands
}

// Annotations returns a run's notes and tags. Without notes of its own a
// run shows its comment (meta.comment), as Omniboard shows it.
func (r *Reader) Annotations(ctx context.Context, id string) (string, []string, error) {
	proj := options.FindOne().SetProjection(bson.D{{Key: "omniboard", Value: 1}, {Key: "meta.comment", Value: 1}})
	for _, c := range idCandidates(id) {
		raw, err := r.runs.FindOne(ctx, bson.D{{Key: "_id", Value: c}}, proj).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("mongo: read the notes of run %s: %w", id, r.cfg.scrub(err))
		}
		notes, hasNotes := raw.Lookup("omniboard", "notes").StringValueOK()
		if !hasNotes {
			notes, _ = raw.Lookup("meta", "comment").StringValueOK()
		}
		var tags []string
		if arr, ok := raw.Lookup("omniboard", "tags").ArrayOK(); ok {
			vals, _ := arr.Values()
			for _, v := range vals {
				if s, ok := v.StringValueOK(); ok {
					tags = append(tags, s)
				}
			}
		}
		return notes, tags, nil
	}
	return "", nil, fmt.Errorf("mongo: run %s in %s.%s: %w", id, r.cfg.DB, r.cfg.Runs, observer.ErrNotFound)
}

// Annotate replaces a run's notes and tags.
func (r *Reader) Annotate(ctx context.Context, id, notes string, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "omniboard.notes", Value: notes}, {Key: "omniboard.tags", Value: tags}}}}
	for _, c := range idCandidates(id) {
		res, err := r.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: c}}, set)
		if err != nil {
			return fmt.Errorf("mongo: set the notes of run %s: %w", id, r.cfg.scrub(err))
		}
		if res.MatchedCount > 0 {
			return nil
		}
	}
	return fmt.Errorf("mongo: run %s in %s.%s: %w", id, r.cfg.DB, r.cfg.Runs, observer.ErrNotFound)
}
