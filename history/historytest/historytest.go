// Package historytest is the conformance suite of history.Store: the same
// tests, run against every engine (SQLite, PostgreSQL), so that the
// deployer behaves the same whichever keeps its record (the idea of
// restic's backend test suite). An engine's test calls Run with a function
// that makes it an empty database.
package historytest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// Opener opens a Store on one database. Each call opens another Store on
// the same database, as a restart of the deployer, or a second process
// beside it, would.
type Opener func(ctx context.Context, opts history.Options) (history.Store, error)

// Run runs every test of the suite. newDB returns an Opener on a new,
// empty database of the engine (a temporary folder, a new PostgreSQL
// database); it is called once per test and subtest that needs one, and
// cleans up with t.Cleanup.
func Run(t *testing.T, newDB func(t *testing.T) Opener) {
	s := suite{newDB: newDB}
	for _, tc := range []struct {
		name string
		test func(*testing.T, suite)
	}{
		{"SaveAndReadBack", testSaveAndReadBack},
		{"DeploymentsFilters", testDeploymentsFilters},
		{"TwoWritersAtOnce", testTwoWritersAtOnce},
		{"Prune", testPrune},
		{"Check", testCheck},
		{"Interrupted", testInterrupted},
		{"Interrupt", testInterrupt},
		{"QueuedNeverGoesBack", testQueuedNeverGoesBack},
		{"TakenOverStays", testTakenOverStays},
		{"OpenAtOnce", testOpenAtOnce},
		{"RecorderWritesTheWholeDeployment", testRecorderWritesTheWholeDeployment},
		{"RecorderMidway", testRecorderMidway},
		{"ObserveDoesNotWaitForTheDatabase", testObserveDoesNotWaitForTheDatabase},
		{"FailedWriteIsLogged", testFailedWriteIsLogged},
		{"RecorderPrunesPeriodically", testRecorderPrunesPeriodically},
		{"RecorderOutage", testRecorderOutage},
		{"Apps", testApps},
		{"HostsDeployed", testHostsDeployed},
		{"Latest", testLatest},
		{"Refused", testRefused},
		{"BranchTip", testBranchTip},
		{"Node", testNode},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, s) })
	}
}

type suite struct {
	newDB func(t *testing.T) Opener
}

// store opens a Store on a new database.
func (s suite) store(t *testing.T, opts history.Options) history.Store {
	t.Helper()
	return open(t, s.newDB(t), opts)
}

// open opens a Store on db, closed when the test ends.
func open(t *testing.T, db Opener, opts history.Options) history.Store {
	t.Helper()
	st, err := db(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func save(t *testing.T, st history.Store, ds ...*deploy.Deployment) {
	t.Helper()
	for _, d := range ds {
		if err := st.Save(context.Background(), d, st.Owner()); err != nil {
			t.Fatal(err)
		}
	}
}

// SameDeployment compares deployments as a store keeps them: errors by
// their text, times by instant, no unexported state.
var SameDeployment = cmp.Options{
	cmpopts.IgnoreUnexported(deploy.Deployment{}),
	cmp.Comparer(func(a, b error) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.Error() == b.Error()
	}),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

// T0 is a time of the tests' deployments. It has nanoseconds: a store
// keeps times to the nanosecond, since the API merges the worker's copies
// of deployments with their records.
var T0 = time.Date(2026, 11, 25, 20, 39, 53, 290_000_123, time.UTC)

// Commit returns a full commit hash made of c.
func Commit(c byte) string {
	b := make([]byte, 40)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func ids(ds []*deploy.Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}
