// Package observertest is the conformance suite every observer runs. It
// has two tiers and one entry point:
//
//   - the store tier (Run, Store) for observers that choose run ids and
//     whose records can be read back through an observer.Reader: file
//     storage, MongoDB, SQL, S3, ...;
//   - the sink tier (RunSink, Sink) for observers with no reader that take
//     the id they are given: notifiers, webhooks, ...;
//   - RunKind runs the right tier for a registered observer.Kind, opening
//     observers (and readers) from a value as the command line would, and
//     checks the Kind itself.
//
// The simplest use is one test per observer package:
//
//	func TestConformance(t *testing.T) {
//		k, _ := observer.Lookup("my_store")
//		observertest.RunKind(t, k, "https://user:hunter2@db.example.com/runs",
//			observertest.WithSecrets("hunter2"),
//			observertest.WithBreak(func(t *testing.T) { srv.Close() }))
//	}
//
// # What RunKind checks of the Kind
//
//   - Option and Usage are set, Parse and New are not nil, the value
//     parses;
//   - every declared secret occurs in the value (else the checks below
//     prove nothing) and Kind.RedactValue(value) contains none of them;
//   - New's errors, Name() and every line the observer writes to
//     Settings.Warn are free of the secrets.
//
// Then it runs the contract checks below (for a store too: every observer
// must honour its context), and the store tier when Kind.Open is set, the
// sink tier otherwise.
//
// # Contract checks, both tiers of RunKind, and RunSink
//
//   - Name() is not empty and holds no secret;
//   - Queued and Started with a given id return that id;
//   - every call (Queued, Started, LogMetrics, Heartbeat, Resource,
//     Artifact, Completed, Failed, Interrupted, Close) returns within a few
//     seconds of its context's deadline, when the deadline is short, when
//     the context is cancelled before the call, and when it is cancelled
//     during the call. The result may be nil or an error (one without a
//     secret). With a Stall hook the destination hangs meanwhile, which is
//     what makes these checks bite: a call that ignores its context then
//     fails them.
//
// # Sink tier (RunSink)
//
//   - a whole run of each ending (start, beats with output, metrics,
//     artifacts, resources, a final beat, then Completed, Failed,
//     Interrupted or a timeout) runs without error against a working sink,
//     and so does a queued run;
//   - with a Break hook, after the sink breaks, calls return errors (at
//     least one must) rather than panic or hang, and no error contains a
//     secret, nor does Name().
//
// # Store tier (Run)
//
//   - times come back in UTC, within a millisecond of what was sent;
//   - config, info, result and metric values come back equal after
//     Normalize (numbers compare as float64); a store may add info keys;
//   - output comes back exactly, byte for byte, also when it arrives in
//     many beats; a store that keeps text rather than bytes may instead
//     return the output with each invalid UTF-8 byte (or run of them)
//     replaced by U+FFFD, which is logged;
//   - ids handed in are used as they are; a taken id is an error wrapping
//     observer.ErrIDTaken; ids the store picks are distinct, also for
//     observers started concurrently;
//   - failed, interrupted, timed-out and queued runs read back with their
//     status, stop time, fail trace and queue time;
//   - artifacts come back by name in the order reported and
//     Reader.Artifact returns their bytes; a name never stored is an
//     error wrapping observer.ErrNotFound, as is a run never stored;
//     resources come back in order with their md5;
//   - with a Break hook, after the store breaks, calls return errors
//     rather than panic or hang, none contains a declared secret, and
//     what was written before reads back intact.
//
// Output, Beats and StartEvent build realistic events for an observer's
// own tests; Normalize and Equal compare decoded values.
package observertest
