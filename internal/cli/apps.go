package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

// addAppFlag gives cmd the --app flag: which app of DEPLOY_APPS_DIR the
// command works on.
func (c *common) addAppFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.app, "app", "", "the `APP` of DEPLOY_APPS_DIR to work on (needed when there are several; pushdeploy apps lists them)")
}

// pickApp is the app --app names. Without --app it is the only app; with
// several apps and no --app it is a usage error naming them (exit 2), so
// that nobody deploys production when they meant staging.
func (c *common) pickApp(s *config.Setup) (*config.App, error) {
	if c.app == "" {
		if len(s.Apps) == 1 {
			return s.Apps[0], nil
		}
		return nil, usagef("there are %d apps (%s): name one with --app NAME", len(s.Apps), strings.Join(s.Names(), ", "))
	}
	if app, ok := s.App(c.app); ok {
		return app, nil
	}
	if s.Dir == "" {
		return nil, usagef("--app %s: no such app: without DEPLOY_APPS_DIR the one app is %s", cut(c.app, 64), deploy.DefaultApp)
	}
	return nil, usagef("--app %s: no such app in %s (apps: %s)", cut(c.app, 64), s.Dir, strings.Join(s.Names(), ", "))
}

// hostNames are the hosts' names, in deploy order.
func hostNames(hosts []deploy.Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.String()
	}
	return out
}

func newAppsCommand(c *common) *cobra.Command {
	return &cobra.Command{
		Use:   "apps",
		Short: "the apps: name, branch, hosts, config file",
		Long: `List the apps this configuration deploys: one per NAME.env file of
DEPLOY_APPS_DIR, or the one app named default without it. For each: its
release branch, how many hosts it deploys to, and the file it is
configured in. Every app is validated first, as serve does.`,
		Example: `  pushdeploy apps
  pushdeploy apps --env-file /etc/pushdeploy/deploy.env --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, s, err := c.setupAll()
			if err != nil {
				return err
			}
			printApps(cmd.OutOrStdout(), s, c.configFile(), c.json)
			return nil
		},
	}
}

// configFile is the env file the default app is configured in: the one
// --env-file names, or deploy.env when it exists; "" for none.
func (c *common) configFile() string {
	if c.envFile != "" {
		return c.envFile
	}
	if _, err := os.Stat(config.DefaultEnvFile); err == nil {
		return config.DefaultEnvFile
	}
	return ""
}

// appJSON is one app of `pushdeploy apps --json`.
type appJSON struct {
	Name        string   `json:"name"`
	Branch      string   `json:"branch"`
	HostCount   int      `json:"host_count"`
	Hosts       []string `json:"hosts"`
	File        string   `json:"file"`
	PromoteFrom string   `json:"promote_from,omitempty"`
}

// printApps prints the apps, sorted by name: a table, or with asJSON one
// JSON document {"apps":[…]}. envFile names where the default app (no
// DEPLOY_APPS_DIR) is configured.
func printApps(w io.Writer, s *config.Setup, envFile string, asJSON bool) {
	list := make([]appJSON, 0, len(s.Apps))
	for _, a := range s.Apps {
		file := a.File
		if file == "" {
			file = envFile
		} else if abs, err := filepath.Abs(file); err == nil {
			file = abs
		}
		list = append(list, appJSON{Name: a.Name, Branch: a.Branch, HostCount: len(a.Hosts), Hosts: hostNames(a.Hosts), File: file, PromoteFrom: a.PromoteFrom})
	}
	if asJSON {
		_ = json.NewEncoder(w).Encode(struct {
			Apps []appJSON `json:"apps"`
		}{list})
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tBRANCH\tHOSTS\tPROMOTE FROM\tFILE")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", a.Name, a.Branch, a.HostCount, orText(a.PromoteFrom, "-"), orText(a.File, "(environment)"))
	}
	_ = tw.Flush()
}
