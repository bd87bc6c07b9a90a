package runcmd

import (
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

// TestJournalFlag: which observers --journal puts behind the durable
// queue, from the command line and from SACRED_JOURNAL.
func TestJournalFlag(t *testing.T) {
	mongo, _ := observer.Lookup("mongo_db")
	sql, _ := observer.Lookup("sql")
	file := observer.Kind{Option: "file_storage", Short: "F"}
	for _, c := range []struct {
		args, env []string
		want      map[string]bool
	}{
		{[]string{"--", "true"}, nil, map[string]bool{"mongo_db": false, "sql": false, "file_storage": false}},
		{[]string{"--journal", "--", "true"}, nil, map[string]bool{"mongo_db": true, "sql": true, "file_storage": false}},
		{[]string{"--journal=mongo-db", "--", "true"}, nil, map[string]bool{"mongo_db": true, "sql": false, "file_storage": false}},
		{[]string{"--journal=m,F", "--", "true"}, nil, map[string]bool{"mongo_db": true, "sql": false, "file_storage": true}},
		{[]string{"--journal=all", "--", "true"}, nil, map[string]bool{"mongo_db": true, "sql": true, "file_storage": true}},
		{[]string{"--journal=none", "--", "true"}, []string{"SACRED_JOURNAL=all"}, map[string]bool{"mongo_db": false, "sql": false, "file_storage": false}},
		{[]string{"--", "true"}, []string{"SACRED_JOURNAL=remote"}, map[string]bool{"mongo_db": true, "sql": true, "file_storage": false}},
	} {
		o, err := parse(t, c.env, c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		o.kinds = append(o.kinds, file)
		for _, k := range []observer.Kind{mongo, sql, file} {
			if got := o.journaled(k); got != c.want[k.Option] {
				t.Errorf("%v %v: journaled(%s) = %v, want %v", c.args, c.env, k.Option, got, c.want[k.Option])
			}
		}
	}
	_, err := parse(t, nil, "--journal=mongo,sql", "--", "true")
	wantUsageError(t, err, `"mongo" is no observer`)
	o, err := parse(t, nil, "--journal-dir", "/j", "--", "true")
	if err != nil || o.JournalDir != "/j" {
		t.Errorf("--journal-dir: %v %v", o, err)
	}
}
