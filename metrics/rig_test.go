package metrics

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
)

// rig runs real deployments: the deploy package's own scripts, run by
// localrun in one folder per host (each plays a host's home), from a real
// git repository. Only python is a stand-in (fakePython), and the resolver
// returns the newest commit.
type rig struct {
	t       *testing.T
	dir     string
	repo    string
	hosts   []deploy.Host
	d       *deploy.Deployer
	commits []string
}

// folderDialer dials each host with a localrun.Runner that starts in the
// host's own folder.
type folderDialer map[string]*localrun.Runner

func (d folderDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	return d[h.Name].Dial(ctx, h)
}

type fixedResolver struct{ rel deploy.Release }

func (r fixedResolver) Resolve(context.Context, deploy.Push) (deploy.Release, error) {
	return r.rel, nil
}

// fakePython makes "-m venv DIR" a folder with itself as bin/python, and
// fails "-m pip install -r FILE" when FILE mentions "broken".
const fakePython = `#!/bin/sh
if [ "$1" = -c ]; then
	echo "fake python 3.0 $0"; exit 0
fi
if [ "$1 $2" = "-m venv" ]; then
	mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
	shift 3
	while [ $# -gt 0 ]; do [ "$1" = -r ] && req=$2; shift; done
	if grep -q broken "$req"; then echo "ERROR: No matching distribution found for broken" >&2; exit 1; fi
	echo "installed $(cat "$req")"; exit 0
fi
exit 3
`

func newRig(t *testing.T, n int) *rig {
	t.Helper()
	for _, tool := range []string{"git", "flock", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("DEPLOY_TEST_DISALLOW_SKIP") != "" {
				t.Fatalf("%s not installed (and DEPLOY_TEST_DISALLOW_SKIP forbids skipping)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, repo: filepath.Join(dir, "repo")}
	py := filepath.Join(dir, "python")
	r.must(os.WriteFile(py, []byte(fakePython), 0o755))
	r.git("init", "-q", "-b", "release", r.repo)
	dialer := folderDialer{}
	for i := 1; i <= n; i++ {
		name := "web" + string(rune('0'+i))
		home := filepath.Join(dir, name)
		r.must(os.MkdirAll(home, 0o755))
		dialer[name] = &localrun.Runner{Dir: home}
		r.hosts = append(r.hosts, deploy.Host{Name: name, Local: true})
	}
	r.d = &deploy.Deployer{
		Dialer: dialer, Root: "app", Python: py, Branch: "release",
		LockTimeout: time.Second, StepTimeout: 20 * time.Second, KeepReleases: 5,
	}
	return r
}

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit commits requirements.txt holding req; the resolver then returns
// that commit.
func (r *rig) commit(req string) string {
	r.t.Helper()
	r.must(os.WriteFile(filepath.Join(r.repo, "requirements.txt"), []byte(req+"\n"), 0o644))
	r.must(os.WriteFile(filepath.Join(r.repo, "app.py"), []byte("# "+time.Now().String()+"\n"), 0o644))
	r.git("-C", r.repo, "add", "-A")
	r.git("-C", r.repo, "commit", "-q", "-m", "c")
	sha := r.git("-C", r.repo, "rev-parse", "HEAD")
	r.commits = append(r.commits, sha)
	r.d.Resolver = fixedResolver{rel: deploy.Release{RepoURL: r.repo, Branch: "release", Commit: sha}}
	return sha
}

// deploy deploys the newest commit to hosts (all when none).
func (r *rig) deploy(hosts ...deploy.Host) *deploy.Deployment {
	r.t.Helper()
	if len(hosts) == 0 {
		hosts = r.hosts
	}
	// Release names have a one-second resolution.
	time.Sleep(1100 * time.Millisecond)
	dep := deploy.NewDeployment(deploy.Request{Trigger: "cli", Push: deploy.Push{Branch: "release"}}, time.Now())
	_ = r.d.Run(context.Background(), dep, hosts)
	return dep.Snapshot()
}

// rollback takes every host to release to.
func (r *rig) rollback(to string) *deploy.Deployment {
	r.t.Helper()
	dep := deploy.NewDeployment(deploy.Request{Action: "rollback", Trigger: "cli", Release: to}, time.Now())
	_ = r.d.Rollback(context.Background(), dep, r.hosts)
	return dep.Snapshot()
}
