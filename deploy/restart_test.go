package deploy

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordConn records the commands run on it and runs none.
type recordConn struct {
	mu   sync.Mutex
	cmds []Command
}

func (c *recordConn) Run(_ context.Context, cmd Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmds = append(c.cmds, cmd)
	return nil
}

func (c *recordConn) Close() error { return nil }

// TestRestartIn checks the one restart command that deploy, revert and
// rollback run: in the release's folder, with its environment.
func TestRestartIn(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name, restartCmd string
		step             Step
		dir, commit      string
		wantEnv          []string // nil: nothing runs
	}{
		{
			name: "deploy", restartCmd: "sudo systemctl restart app", step: StepRestart,
			dir: "/srv/app/releases/20261126012347-0123456", commit: commit,
			wantEnv: []string{
				"RELEASE_DIR=/srv/app/releases/20261126012347-0123456", "CURRENT_DIR=/srv/app/current", "COMMIT=" + commit,
				"BRANCH=release", "DEPLOYMENT_ID=ID", "APP_PROCESSES=2", "APP_THREADS=15",
			},
		},
		{
			name: "the previous release", restartCmd: "app-restart $APP_PROCESSES", step: StepRestartPrevious,
			dir: "/srv/app/releases/20261125183400-1a2b3c4", commit: "1a2b3c4",
			wantEnv: []string{
				"RELEASE_DIR=/srv/app/releases/20261125183400-1a2b3c4", "CURRENT_DIR=/srv/app/current", "COMMIT=1a2b3c4",
				"BRANCH=release", "DEPLOYMENT_ID=ID", "APP_PROCESSES=2", "APP_THREADS=15",
			},
		},
		{name: "no restart command", step: StepRestart, dir: "/srv/app/releases/x", commit: commit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &recordConn{}
			dep := NewDeployment(Request{Trigger: "cli"}, time.Now())
			dep.ID = "ID"
			dep.Release = Release{Branch: "release", Commit: commit}
			r := &hostRun{
				d:   &Deployer{RestartCmd: tt.restartCmd, AppProcesses: 2, AppThreads: 15, StepTimeout: time.Minute},
				dep: dep, res: &HostResult{Host: Host{Name: "web1"}}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				conn: conn, root: "/srv/app",
			}
			if err := r.restartIn(context.Background(), tt.step, tt.dir, tt.commit); err != nil {
				t.Fatal(err)
			}
			if tt.wantEnv == nil {
				if len(conn.cmds) != 0 || len(r.res.Steps) != 0 {
					t.Errorf("got commands %v, steps %v; want none", conn.cmds, r.res.Steps)
				}
				return
			}
			if len(conn.cmds) != 1 || len(r.res.Steps) != 1 || r.res.Steps[0].Name != tt.step {
				t.Fatalf("got commands %v, steps %v; want one, step %s", conn.cmds, r.res.Steps, tt.step)
			}
			cmd := conn.cmds[0]
			if cmd.Dir != tt.dir || !slices.Equal(cmd.Env, tt.wantEnv) || !slices.Equal(cmd.Args, []string{"sh", "-c", tt.restartCmd}) {
				t.Errorf("got Dir %q, Env %q, Args %q; want %q, %q, sh -c %q", cmd.Dir, cmd.Env, cmd.Args, tt.dir, tt.wantEnv, tt.restartCmd)
			}
		})
	}
}
