package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
	"github.com/pushdeploy/pushdeploy/queue"
)

// TestTakeTurn: with DEPLOY_DATABASE_URL the command line's deployment
// takes part in the deployers' queue. While a deployer (node-b) runs one of
// the app, --no-wait is refused naming it (exit 1); without it, the
// deployment waits, says who holds the app, and runs once node-b has
// finished, holding the app until the command line finishes it.
func TestTakeTurn(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	url := pgtest.Start(t).NewDatabase(t)
	cfg := &config.Config{DatabaseURL: url}
	serve, err := queue.OpenPostgres(ctx, url, queue.Options{Owner: "node-b", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()
	if _, err := serve.Enqueue(ctx, "web", "served-1", deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}}); err != nil {
		t.Fatal(err)
	}
	running, err := serve.Claim(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}

	newDep := func() *deploy.Deployment {
		dep := deploy.NewDeployment(deploy.Request{Trigger: deploy.TriggerCLI, Push: deploy.Push{Branch: "release"}}, time.Now())
		dep.App = "web"
		return dep
	}
	_, err = takeTurn(ctx, cfg, log, &testhosts.Buffer{}, newDep(), true)
	if err == nil || !strings.Contains(err.Error(), "served-1") || !strings.Contains(err.Error(), "node-b") {
		t.Fatalf("--no-wait while node-b deploys: %v, want refused naming served-1 and node-b", err)
	}
	if code := exitCode(err, &bytes.Buffer{}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}

	stderr := &testhosts.Buffer{}
	dep := newDep()
	type result struct {
		done func()
		err  error
	}
	got := make(chan result, 1)
	go func() {
		done, err := takeTurn(ctx, cfg, log, stderr, dep, false)
		got <- result{done, err}
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), "node-b") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of who holds the app; stderr: %q", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-got:
		t.Fatalf("took its turn while node-b runs: %v", r.err)
	default:
	}
	if err := serve.Finish(ctx, running, deploy.StatusSucceeded); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(time.Minute):
		t.Fatal("no turn a minute after node-b finished")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	j, _, err := serve.Job(ctx, dep.ID)
	if err != nil || j.State != queue.StateRunning || !strings.HasPrefix(j.Owner, "cli:") {
		t.Fatalf("the command line's deployment in the queue: %+v, %v; want running, owned by the command line", j, err)
	}
	if _, err := serve.Claim(ctx, "web"); err == nil {
		t.Error("a deployer claimed the app while the command line holds it")
	}
	dep.Stop() // stands in for the run; its status is what is finished
	r.done()
	j, _, _ = serve.Job(ctx, dep.ID)
	if j.State != queue.StateFinished {
		t.Errorf("after done: %s, want finished", j.State)
	}
}
