package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
	"github.com/pushdeploy/pushdeploy/internal/deploytest"
)

// rig runs real deployments: the deploy package's own scripts, run by
// localrun in one folder per host (each plays a host's home), from a real
// git repository. Only python is a stand-in (deploytest.FakePython), and
// the resolver returns the newest commit. The Deployer's clock moves a
// second forward at each deploy, so that every deployment has its own
// release name.
type rig struct {
	t     *testing.T
	repo  *deploytest.Repo
	clock *deploytest.Clock
	hosts []deploy.Host
	d     *deploy.Deployer
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

func newRig(t *testing.T, n int) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, repo: deploytest.NewRepo(t, filepath.Join(dir, "repo")), clock: &deploytest.Clock{}}
	dialer := folderDialer{}
	for i := 1; i <= n; i++ {
		name := "web" + string(rune('0'+i))
		dialer[name] = &localrun.Runner{Dir: t.TempDir()}
		r.hosts = append(r.hosts, deploy.Host{Name: name, Local: true})
	}
	r.d = &deploy.Deployer{
		Dialer: dialer, Root: "app", Python: deploytest.WriteFakePython(t, dir), Branch: "release",
		LockTimeout: time.Second, StepTimeout: 20 * time.Second, KeepReleases: 5, Now: r.clock.Now,
	}
	return r
}

// commit commits requirements.txt holding req; the resolver then returns
// that commit.
func (r *rig) commit(req string) string {
	r.t.Helper()
	sha := r.repo.Commit(req)
	r.d.Resolver = fixedResolver{rel: deploy.Release{RepoURL: r.repo.Dir, Branch: "release", Commit: sha}}
	return sha
}

// deploy deploys the newest commit to hosts (all when none).
func (r *rig) deploy(hosts ...deploy.Host) *deploy.Deployment {
	r.t.Helper()
	if len(hosts) == 0 {
		hosts = r.hosts
	}
	r.clock.Tick()
	dep := deploy.NewDeployment(deploy.Request{Trigger: "cli", Push: deploy.Push{Branch: "release"}}, r.clock.Now())
	_ = r.d.Run(context.Background(), dep, hosts)
	return dep.Snapshot()
}

// rollback takes every host to release to.
func (r *rig) rollback(to string) *deploy.Deployment {
	r.t.Helper()
	dep := deploy.NewDeployment(deploy.Request{Action: "rollback", Trigger: "cli", Release: to}, r.clock.Now())
	_ = r.d.Rollback(context.Background(), dep, r.hosts)
	return dep.Snapshot()
}
