package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// rig is what both benchmarks run on: a pushdeploy binary, loopback test
// hosts and a git server (internal/testhosts, as the end-to-end tests
// use), and the test app committed on the release branch.
type rig struct {
	tmp, bin string
	env      *testhosts.Env
	sha      string // the app's commit
}

// newRig builds pushdeploy (unless bin names one already built), starts
// the hosts and commits the app. close tears it all down.
func newRig(ctx context.Context, hosts int, bin string) (r *rig, close func(), err error) {
	if err := testhosts.Check(); err != nil {
		return nil, nil, fmt.Errorf("this machine cannot run the benchmark (run .ci/install as root first): %w", err)
	}
	r = &rig{bin: bin}
	if r.tmp, err = os.MkdirTemp("", "pushdeploy-bench-"); err != nil {
		return nil, nil, err
	}
	close = func() { os.RemoveAll(r.tmp) }
	if r.bin == "" {
		note("building pushdeploy")
		r.bin = filepath.Join(r.tmp, "pushdeploy")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", r.bin, "github.com/pushdeploy/pushdeploy").CombinedOutput(); err != nil {
			close()
			return nil, nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	note("starting %d test hosts and a git server on loopback addresses", hosts)
	if r.env, err = testhosts.Start(ctx, testhosts.Options{Hosts: hosts}); err != nil {
		close()
		return nil, nil, err
	}
	close = func() {
		note("tearing down the test hosts")
		if err := r.env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/webhook: close:", err)
		}
		os.RemoveAll(r.tmp)
	}
	for _, h := range r.env.Hosts {
		// The hosts trust the git server only through the key pushdeploy
		// verified and hands them.
		if err := os.Remove(h.Path(".ssh/known_hosts")); err != nil && !os.IsNotExist(err) {
			close()
			return nil, nil, err
		}
	}
	if r.sha, err = r.env.Commit(ctx, r.env.AppFiles("1.0"), "app with pdtestdep 1.0"); err != nil {
		close()
		return nil, nil, err
	}
	return r, close, nil
}

// vars is serve's configuration on the rig, for s listening on addr and
// keeping its state in dataDir; the caller adds or changes what it needs.
func (r *rig) vars(s *server, addr, dataDir string) map[string]string {
	return map[string]string{
		"DEPLOY_REPO_URL":       r.env.RepoURL,
		"DEPLOY_HOSTS_FILE":     r.env.HostsFile,
		"DEPLOY_ROOT":           "app",
		"DEPLOY_SSH_KEY":        r.env.AdminKey,
		"DEPLOY_KNOWN_HOSTS":    r.env.KnownHosts,
		"DEPLOY_GIT_KEY":        r.env.GitKey,
		"DEPLOY_DATA_DIR":       dataDir,
		"DEPLOY_WEBHOOK_SECRET": s.secret,
		"DEPLOY_WEBHOOK_REPO":   "team/app",
		"DEPLOY_API_TOKEN":      s.token,
		"DEPLOY_LISTEN":         addr,
	}
}

// serveProc is a running `pushdeploy serve`.
type serveProc struct {
	cmd    *exec.Cmd
	exited chan error
	pid    int
	log    *os.File
}

// startServe writes vars to the env file envName in r's hosts folder and
// starts serve with it, logging (JSON) to logPath, then waits until it
// answers /healthz.
func (r *rig) startServe(ctx context.Context, s *server, vars map[string]string, envName, logPath string) (*serveProc, error) {
	envFile := filepath.Join(r.env.Dir, envName)
	if err := writeEnvFile(envFile, vars); err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	note("starting pushdeploy serve on %s (log: %s)", vars["DEPLOY_LISTEN"], logPath)
	cmd := exec.Command(r.bin, "serve", "--json", "--grace", "5s", "--env-file", envFile)
	cmd.Dir = r.env.Dir
	cmd.Env = testhosts.CommandEnv()
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &serveProc{cmd: cmd, exited: make(chan error, 1), pid: cmd.Process.Pid, log: logFile}
	go func() { p.exited <- cmd.Wait() }()
	if err := s.waitHealthy(ctx, 20*time.Second, p.exited); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w\n%s", err, tailFile(logPath))
	}
	return p, nil
}

// stop sends SIGTERM and waits for the exit (see stopServe).
func (p *serveProc) stop() shutdownResult {
	res := stopServe(p.cmd, p.exited)
	p.log.Close()
	return res
}

// kill ends serve at once (after a failure of the benchmark).
func (p *serveProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.log.Close()
}
