package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

// deployFlags are deploy's own flags.
type deployFlags struct {
	commit string
	from   string
	dryRun bool
	noWait bool
}

func newDeployCommand(c *common) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy [--app NAME] [--commit SHA | --from APP] [--hosts H,H] [--dry-run] [--no-wait]",
		Short: "deploy the branch tip (or a commit on the branch) now",
		Long: `Deploy the tip of the release branch (or --commit, a commit on it) to every
host, or to --hosts, in hosts-file order: log in everywhere, prepare each
host (lock, fetch, release folder, venv, hooks), then switch current and
restart. A failure while preparing changes nothing that serves traffic.

With DEPLOY_APPS_DIR, --app names the app; --from deploys exactly the
commit another app's hosts run now (it must be on this app's branch). An
app with DEPLOY_PROMOTE_FROM deploys only commits its source app deployed
to every one of its hosts: any other is refused, and recorded so.

With DEPLOY_DATABASE_URL the deploy takes its turn in the queue the
deployers (serve) share: it waits for the deployment of the app that runs
and those asked for before it, saying who holds the app; --no-wait
starts at once or is refused (exit 1), naming the deployment that runs or
waits and its deployer.`,
		Example: `  pushdeploy deploy
  pushdeploy deploy --commit 1a2b3c4
  pushdeploy deploy --hosts web2,web3
  pushdeploy deploy --dry-run
  pushdeploy deploy --app production --from staging
  pushdeploy deploy --env-file /etc/pushdeploy/deploy.env --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDeploy(cmd.Context(), c, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.commit, "commit", "", "deploy this `SHA` (full or abbreviated; must be on the release branch) instead of the tip")
	fl.StringVar(&f.from, "from", "", "deploy the commit every host of `APP` (another app of DEPLOY_APPS_DIR) runs now")
	c.addAppFlag(cmd)
	c.addHostsFlag(cmd, "deploy only to")
	fl.BoolVar(&f.dryRun, "dry-run", false, "change nothing: log in, run the preflight checks and print what the deploy would do (exit 1 when it would fail)")
	addNoWaitFlag(cmd, &f.noWait)
	return cmd
}

func runDeploy(ctx context.Context, c *common, f deployFlags, stdout io.Writer) error {
	if f.commit != "" {
		if err := deploy.ValidCommitPrefix(f.commit); err != nil {
			return usagef("--commit: %v", err)
		}
		if f.from != "" {
			return usagef("--commit and --from: give one of them (--from deploys the commit the other app runs)")
		}
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	cfg, d, hosts := s.cfg, s.d, s.hosts
	req := deploy.Request{Trigger: deploy.TriggerCLI, Actor: osUser(), Push: deploy.Push{Branch: cfg.Branch, Commit: f.commit}, From: f.from}

	if f.dryRun {
		push, err := s.dryRunPush(ctx, req)
		if err != nil {
			return err
		}
		return deployDryRun(ctx, d, hosts, push, stdout, c.json)
	}
	err = s.record(ctx, c, func(ctx context.Context, hist hostsDeployed) error {
		if g := s.gate(f.from, hist); g != nil {
			adm, err := g.Admit(ctx, req)
			if err != nil {
				return admitError(err, f.from, cfg)
			}
			if adm.Refused != "" {
				dep := deploy.NewDeployment(adm.Request, time.Now())
				dep.App = cfg.Name
				refused := d.Refuse(dep, adm.Release, hosts, adm.Refused)
				printDeployment(stdout, dep, c.json)
				return fmt.Errorf("deploy %w", refused)
			}
			req = adm.Request
		}
		dep := deploy.NewDeployment(req, time.Now())
		dep.App = cfg.Name
		done, err := takeTurn(ctx, cfg.Config, s.log, c.stderr, dep, f.noWait)
		if err != nil {
			return err
		}
		err = d.Run(ctx, dep, hosts)
		done()
		printDeployment(stdout, dep, c.json)
		if err != nil {
			return fmt.Errorf("deploy failed: %w", err)
		}
		return nil
	})
	return err
}

// dryRunPush is what a dry run plans to deploy: for a promoted app or
// --from, the commit the gate pins (refused: an error, exit 1), checked
// against the history without writing to it.
func (s *session) dryRunPush(ctx context.Context, req deploy.Request) (deploy.Push, error) {
	g := s.gate(req.From, nil)
	if g == nil {
		return req.Push, nil
	}
	if p, ok := g.Peers.(cliPeers); ok {
		st, closeHistory, err := readHistory(ctx, s.cfg.Config, s.log)
		if err != nil {
			return deploy.Push{}, err
		}
		defer closeHistory()
		if st != nil {
			p.history = st
			g.Peers = p
		}
	}
	adm, err := g.Admit(ctx, req)
	if err != nil {
		return deploy.Push{}, admitError(err, req.From, s.cfg)
	}
	if adm.Refused != "" {
		return deploy.Push{}, fmt.Errorf("dry run: the deploy would be refused: %s", adm.Refused)
	}
	return adm.Request.Push, nil
}

// admitError is the command line's error for what deploy.Gate refused to
// queue: a commit --from found that is not on the branch is --from's
// mistake (exit 2), as a --commit of another branch is --commit's.
func admitError(err error, from string, app *config.App) error {
	var ce *deploy.CommitError
	var re *deploy.RequestError
	switch {
	case from != "" && errors.As(err, &ce):
		return usagef("--from %s: %s runs commit %s, which is not on %s's branch %s", from, from, ce.Commit, app.Name, app.Branch)
	case errors.As(err, &re):
		// The gate names the API's field ("from: …"): here it is a flag.
		if strings.HasPrefix(re.Msg, "from") {
			return usagef("--%s", re.Msg)
		}
		return usagef("%v", re)
	}
	return err
}

func printDeployment(w io.Writer, dep *deploy.Deployment, asJSON bool) {
	if !asJSON {
		if dep.Status == deploy.StatusSucceeded {
			fmt.Fprintf(w, "deployed %s (%s) as %s to %d host(s) in %.1fs\n",
				dep.Release.Commit, dep.Release.Branch, dep.ReleaseName, len(dep.Hosts), dep.Finished.Sub(dep.Started).Seconds())
		}
		return
	}
	printJSON(w, dep)
}

// printJSON prints dep as the API shows it (deploy.DeploymentReport, with
// every host's steps): `deploy --json`, `rollback --json` and `history
// --json` print one shape.
func printJSON(w io.Writer, dep *deploy.Deployment) {
	_ = json.NewEncoder(w).Encode(deploy.ReportDeployment(dep, true))
}
