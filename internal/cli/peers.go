package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
)

// cliPeers answers promotion's questions (deploy.Peers) for a deploy run
// from the command line, without serve: what the other app deployed, from
// the history in DEPLOY_DATA_DIR, and what its hosts run, read from them.
type cliPeers struct {
	setup   *config.Setup
	history hostsDeployed // nil: no history could be opened
	log     *slog.Logger
}

var _ deploy.Peers = cliPeers{}

// DeployedEverywhere reports whether app deployed commit to every one of
// its hosts, by the history.
func (p cliPeers) DeployedEverywhere(ctx context.Context, app, commit string) (bool, string, error) {
	a, ok := p.setup.App(app)
	if !ok {
		return false, fmt.Sprintf("there is no app %s", app), nil
	}
	return deployedEverywhere(ctx, p.history, app, a.Hosts, commit)
}

// Running logs into app's hosts and returns the one commit they all run.
func (p cliPeers) Running(ctx context.Context, app string) (string, error) {
	a, ok := p.setup.App(app)
	if !ok {
		return "", &deploy.RequestError{Msg: fmt.Sprintf("from: there is no app %s (apps: %s)", cut(app, 64), strings.Join(p.setup.Names(), ", "))}
	}
	d, closeKeys, err := newDeployer(a, p.log)
	if err != nil {
		return "", err
	}
	defer closeKeys()
	hosts, err := d.Releases(ctx, a.Hosts)
	return runningCommit(hosts, err)
}

// gate is what a deploy from the command line goes through when the app
// is promoted (DEPLOY_PROMOTE_FROM) or --from names another app, as serve's
// requests do (deploy.Gate); nil when neither: then the deploy resolves
// the branch itself, as it always has.
func (s *session) gate(from string, hist hostsDeployed) *deploy.Gate {
	if s.cfg.PromoteFrom == "" && from == "" {
		return nil
	}
	g := &deploy.Gate{App: s.cfg.Name, PromoteFrom: s.cfg.PromoteFrom, Resolver: s.d.Resolver}
	if s.all.Dir != "" {
		g.Peers = cliPeers{setup: s.all, history: hist, log: s.log}
	}
	return g
}
