package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// historyFlags are the history command's filters, as the API's
// GET /api/deployments takes them.
type historyFlags struct {
	limit  int
	status string
	commit string
	since  string
}

func newHistoryCommand(c *common) *cobra.Command {
	var f historyFlags
	cmd := &cobra.Command{
		Use:   "history [ID] [--limit N] [--status S] [--commit SHA] [--since WHEN]",
		Short: "past deployments, newest first; with an ID, that one per host and step",
		Long: `List past deployments and rollbacks from the history in DEPLOY_DATA_DIR
(history.db), newest first; with a deployment ID, show that one: per host,
each step with its duration, errors and the output kept. It reads the
database directly, so it works beside a running serve and without it.`,
		Example: `  pushdeploy history
  pushdeploy history --status failed --since 24h
  pushdeploy history --commit 1a2b3c4 --limit 5
  pushdeploy history 20261126-012347-9e5160
  pushdeploy history 20261126-012347-9e5160 --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return &usageError{msg: fmt.Sprintf("history: unexpected argument %q (one deployment ID at most)", args[1]), cmd: cmd.CommandPath()}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return runHistory(cmd.Context(), c, f, id, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.limit, "limit", 20, "show at most `N` deployments (0: all)")
	fl.StringVar(&f.status, "status", "", "only deployments with this `STATUS` (queued, running, succeeded, failed, interrupted, refused)")
	fl.StringVar(&f.commit, "commit", "", "only deployments of commits starting with `SHA`")
	c.addAppFlag(cmd)
	fl.StringVar(&f.since, "since", "", "only deployments queued since `WHEN`: a duration back from now (24h, 90m) or an RFC 3339 time")
	return cmd
}

// filter turns the flags into the history's filter, or a usage error.
func (f historyFlags) filter(now time.Time) (deploy.Filter, error) {
	out := deploy.Filter{Limit: f.limit, Commit: strings.ToLower(f.commit)}
	if f.limit < 0 {
		return out, usagef("--limit: %d is negative", f.limit)
	}
	if f.status != "" {
		s := deploy.Status(f.status)
		switch s {
		case deploy.StatusQueued, deploy.StatusRunning, deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusInterrupted, deploy.StatusRefused:
			out.Status = s
		default:
			return out, usagef("--status: %q is not a status (queued, running, succeeded, failed, interrupted, refused)", f.status)
		}
	}
	if f.commit != "" {
		if err := deploy.ValidCommitPrefix(out.Commit); err != nil {
			return out, usagef("--commit: %v", err)
		}
	}
	if f.since != "" {
		if d, err := time.ParseDuration(f.since); err == nil && d >= 0 {
			out.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, f.since); err == nil {
			out.Since = t
		} else {
			return out, usagef("--since: %q is neither a duration (24h, 90m) nor an RFC 3339 time (2026-11-25T20:00:00Z)", f.since)
		}
	}
	return out, nil
}

func runHistory(ctx context.Context, c *common, f historyFlags, id string, stdout io.Writer) error {
	filter, err := f.filter(time.Now())
	if err != nil {
		return err
	}
	if id != "" && !validID(id) {
		return usagef("history: %q is not a deployment ID (like 20261126-012347-9e5160: pushdeploy history lists them)", cut(id, 80))
	}
	log, cfg, err := c.historyApp(id)
	if err != nil {
		return err
	}
	if cfg.File != "" {
		filter.App = cfg.Name
	}
	st, closeHistory, err := readHistory(ctx, cfg.Config, log)
	if err != nil {
		return err
	}
	if st == nil {
		if id != "" {
			return fmt.Errorf("deployment %s: not in the history (%s has no %s yet)", id, cfg.DataDir, history.FileName)
		}
		if !c.json {
			fmt.Fprintf(stdout, "no deployments recorded yet (%s has no %s)\n", cfg.DataDir, history.FileName)
		}
		return nil
	}
	defer closeHistory()
	if id != "" {
		dep, ok, err := st.Deployment(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("deployment %s: not in the history (pushdeploy history lists the recorded ones)", id)
		}
		if c.json {
			printJSON(stdout, dep)
		} else {
			printHistoryDetail(stdout, dep)
		}
		return nil
	}
	list, err := st.Deployments(ctx, filter)
	if err != nil {
		return err
	}
	if c.json {
		for _, dep := range list {
			printJSON(stdout, dep)
		}
		return nil
	}
	// Several deployers share a database: which one ran each is told.
	printHistoryList(stdout, list, cfg.DatabaseURL != "")
	return nil
}

// historyApp is the app whose history is asked for: the one --app names.
// A deployment's ID names it among all apps: then --app is not needed.
func (c *common) historyApp(id string) (*slog.Logger, *config.App, error) {
	log, s, err := c.setupAll()
	if err != nil {
		return nil, nil, err
	}
	if id != "" && c.app == "" {
		return log, s.Apps[0], nil
	}
	app, err := c.pickApp(s)
	return log, app, err
}

// readHistory opens the history (in DEPLOY_DATABASE_URL, else in
// DEPLOY_DATA_DIR) to read it; nil when DEPLOY_DATA_DIR has none yet: it is
// never created here (no file means nothing was recorded).
func readHistory(ctx context.Context, cfg *config.Config, log *slog.Logger) (history.Store, func(), error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, history.FileName)); cfg.DatabaseURL == "" && errors.Is(err, os.ErrNotExist) {
		return nil, func() {}, nil
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return st, func() { st.Close() }, nil
}

// printHistoryList prints one line per deployment, newest first; withNode
// adds the deployer that ran each (NODE).
func printHistoryList(w io.Writer, list []*deploy.Deployment, withNode bool) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no deployments match")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "ID\tACTION\tSTATUS\tTRIGGER\tBY\tCOMMIT\tRELEASE\tQUEUED\tTOOK"
	if withNode {
		head += "\tNODE"
	}
	fmt.Fprintln(tw, head)
	for _, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", d.ID, orText(string(d.Action), string(deploy.ActionDeploy)), d.Status,
			d.Request.Trigger, orText(visible(d.Request.Actor, false), "-"), orText(short(commitOf(d)), "-"), orText(d.ReleaseName, "-"),
			d.Queued.Local().Format("2006-01-02 15:04:05"), took(d))
		if withNode {
			fmt.Fprintf(tw, "\t%s", orText(visible(d.Node, false), "-"))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

// printHistoryDetail prints one deployment: what it was, then per host
// each step with its duration, and errors and kept output below.
func printHistoryDetail(w io.Writer, d *deploy.Deployment) {
	fmt.Fprintf(w, "%s %s  %s  (%s", orText(string(d.Action), string(deploy.ActionDeploy)), d.ID, d.Status, d.Request.Trigger)
	if d.Request.Actor != "" {
		fmt.Fprintf(w, " by %s", visible(d.Request.Actor, false))
	}
	fmt.Fprintln(w, ")")
	if c := commitOf(d); c != "" {
		fmt.Fprintf(w, "commit   %s  branch %s\n", c, orText(d.Release.Branch, d.Request.Push.Branch))
	}
	if d.ReleaseName != "" {
		fmt.Fprintf(w, "release  %s\n", d.ReleaseName)
	}
	if d.Node != "" {
		fmt.Fprintf(w, "node     %s\n", visible(d.Node, false))
	}
	fmt.Fprintf(w, "queued   %s", d.Queued.Local().Format(time.DateTime))
	if !d.Started.IsZero() {
		fmt.Fprintf(w, "  started %s", d.Started.Local().Format(time.DateTime))
	}
	fmt.Fprintf(w, "  took %s\n", took(d))
	if d.Err != nil {
		fmt.Fprintf(w, "error    %s\n", visible(d.Err.Error(), true))
	}
	for _, h := range d.Hosts {
		fmt.Fprintf(w, "\n%-20s %s  %.2fs\n", h.Host.String(), h.Status, h.Duration.Seconds())
		for _, s := range h.Steps {
			line := fmt.Sprintf("%.2fs", s.Duration.Seconds())
			if s.Err != nil {
				line = fmt.Sprintf("FAILED after %.2fs: %s", s.Duration.Seconds(), visible(s.Err.Error(), true))
			} else if s.Status != deploy.StatusSucceeded {
				line = string(s.Status)
			}
			fmt.Fprintf(w, "  %-13s %s\n", s.Name, line)
			if out := strings.TrimSpace(s.Output); out != "" {
				for _, l := range strings.Split(out, "\n") {
					fmt.Fprintf(w, "      | %s\n", visible(l, false))
				}
			}
		}
	}
}

// validID tells whether id could be a deployment ID: lower-case letters,
// digits and dashes, 64 at most.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// commitOf is the deployed commit, or the one asked for before it was
// resolved.
func commitOf(d *deploy.Deployment) string {
	return orText(d.Release.Commit, d.Request.Push.Commit)
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// took is how long a finished deployment ran ("-" before it ended).
func took(d *deploy.Deployment) string {
	if d.Started.IsZero() || d.Finished.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Finished.Sub(d.Started).Seconds())
}
