// Package testutil holds small helpers that tests of several packages
// share and that need no test server (see internal/testserver for
// those): it stays light to compile.
package testutil
