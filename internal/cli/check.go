package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

func newCheckCommand(c *common) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "preflight: config, keys, host keys, SSH logins, python, git access",
		Long: `Check everything a deploy needs, changing nothing: the configuration, the
keys, every host's key against DEPLOY_KNOWN_HOSTS, the SSH logins, the
root folder, the tools and the Python on each host, and git access from
the deployer and from each host. Exit 1 when a check fails. With
DEPLOY_APPS_DIR and no --app, every app is checked, one after another.`,
		Example: `  pushdeploy check
  pushdeploy check --env-file staging.env --json
  pushdeploy check --app production`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), c, cmd.OutOrStdout())
		},
	}
	c.addAppFlag(cmd)
	c.addHostsFlag(cmd, "check only")
	return cmd
}

func runCheck(ctx context.Context, c *common, stdout io.Writer) error {
	log, setup, err := c.setupAll()
	if err != nil {
		return err
	}
	apps := setup.Apps
	if c.app != "" || setup.Dir == "" {
		app, err := c.pickApp(setup)
		if err != nil {
			return err
		}
		apps = []*config.App{app}
	}
	// Each app's hosts are checked in turn, under a heading of its own:
	// the hosts of one app are checked at once already.
	failed := false
	for i, app := range apps {
		group := ""
		if setup.Dir != "" {
			group = app.Name
			if !c.json {
				if i > 0 {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "app %s (%s)\n", app.Name, app.File)
			}
		}
		err := checkApp(ctx, c, log, app, group, stdout)
		if errors.Is(err, errReported) {
			failed = true
			continue
		}
		if err != nil {
			return err
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// checkApp checks one app and prints each result; group, when not empty,
// is the app's name for the JSON lines. errReported: a check failed.
func checkApp(ctx context.Context, c *common, log *slog.Logger, cfg *config.App, group string, stdout io.Writer) error {
	hosts, err := c.selectedHosts(cfg.Config)
	if err != nil {
		return err
	}
	report := func(r deploy.CheckResult) {
		if c.json {
			line := map[string]any{"host": r.Host, "check": r.Name, "ok": r.Err == nil, "detail": r.Detail, "seconds": r.Duration.Seconds()}
			if group != "" {
				line["app"] = group
			}
			if r.Err != nil {
				line["error"] = r.Err.Error()
			}
			_ = json.NewEncoder(stdout).Encode(line)
			return
		}
		where := r.Host
		if where == "" {
			where = "-"
		}
		if r.Err != nil {
			fmt.Fprintf(stdout, "FAIL  %-28s %-11s %s\n", where, r.Name, visible(r.Err.Error(), true))
			return
		}
		fmt.Fprintf(stdout, "ok    %-28s %-11s %s (%.2fs)\n", where, r.Name, r.Detail, r.Duration.Seconds())
	}
	report(deploy.CheckResult{Name: "config", Detail: fmt.Sprintf("%d host(s), branch %s, root %s", len(hosts), cfg.Branch, cfg.Root)})
	d, closeKeys, err := newDeployer(cfg, appLogger(log, cfg))
	if err != nil {
		report(deploy.CheckResult{Name: "keys", Err: err})
		return errReported
	}
	defer closeKeys()
	keys := "admin key loaded into the in-memory agent"
	if cfg.SSHKey == "" {
		keys = "no admin key (every host is local)"
	}
	if len(cfg.GitKeyPEM) > 0 {
		keys += "; deploy key ready to lend"
	}
	report(deploy.CheckResult{Name: "keys", Detail: keys})
	failed := false
	for _, r := range d.Check(ctx, hosts) {
		report(r)
		failed = failed || r.Err != nil
	}
	if failed {
		return errReported
	}
	return nil
}
