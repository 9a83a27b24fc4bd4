// Package cli is pushdeploy's command line: one file per command (deploy,
// check, rollback, releases, serve), the flags they share, the progress
// printer, and wire.go, which builds the adapters (SSH, git, history,
// notifications, metrics, webhook) from the configuration. It is the only
// package that reads config, and the only one that turns errors into exit
// statuses; main.go only calls Run and Exit.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError is a mistake on the command line: exit status 2. cmd is the
// command whose --help the hint names.
type usageError struct{ msg, cmd string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Exit turns Run's error into the contract's exit status (0, 1 or 2),
// printing it to stderr (as a JSON line when args ask for --json).
func Exit(err error, args []string, stderr io.Writer) int {
	return exitCode(err, errorWriter(args, stderr))
}

// exitCode turns run's error into the contract's exit status, printing it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	var ce *config.Error
	var commitErr *deploy.CommitError
	switch {
	case errors.As(err, &commitErr):
		fmt.Fprintf(stderr, "pushdeploy: --commit: %v\n", commitErr)
		return 2
	case errors.As(err, &ue):
		cmd := ue.cmd
		if cmd == "" {
			cmd = "pushdeploy"
		}
		fmt.Fprintf(stderr, "pushdeploy: %v\nRun '%s --help' for usage.\n", err, cmd)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "pushdeploy: bad configuration:\n%v\n", err)
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		// A failed step's error carries the host's output: printed
		// visibly, as the progress prints it.
		fmt.Fprintf(stderr, "pushdeploy: %s\n", visible(err.Error(), true))
		return 1
	}
}

// errorWriter is where exitCode prints: stderr, or with --json a writer
// that turns each message into a JSON line like the progress ones, so
// that everything --json writes to stderr parses.
func errorWriter(args []string, stderr io.Writer) io.Writer {
	for _, a := range args {
		switch a {
		case "--":
			return stderr
		case "--json", "--json=true":
			return jsonErrors{stderr}
		}
	}
	return stderr
}

// jsonErrors writes each message it is given as one JSON line.
type jsonErrors struct{ w io.Writer }

func (j jsonErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(strings.TrimPrefix(string(p), "pushdeploy: "))
	line, err := json.Marshal(struct {
		Time  time.Time `json:"time"`
		Level string    `json:"level"`
		Msg   string    `json:"msg"`
		Error string    `json:"error"`
	}{time.Now(), "ERROR", "pushdeploy failed", msg})
	if err != nil {
		return 0, err
	}
	if _, err := j.w.Write(append(line, '\n')); err != nil {
		return 0, err
	}
	return len(p), nil
}

// errReported is a failure whose details were already printed.
var errReported = errors.New("failed")

// Run is the whole program but for the process exit, given the arguments
// after the program name.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr)
}

// run is the whole program but for the process exit: main stays thin, and
// tests call run directly. Help, flag parsing and shell completion are
// cobra's; exit statuses and error messages stay ours (Exit).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	ran := false // a command's own RunE started: its errors are not usage errors
	for _, c := range root.Commands() {
		if c.RunE == nil {
			continue
		}
		runE := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			ran = true
			return runE(cmd, args)
		}
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || ran {
		return err
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	// cobra's own: an unknown command or flag, a missing or extra argument.
	return &usageError{msg: err.Error(), cmd: cmd.CommandPath()}
}

// common holds the flags every command takes, and what they set up.
type common struct {
	envFile string
	json    bool
	verbose bool
	hosts   string // --hosts, for the commands that take it
	app     string // --app, for the commands that take it
	stderr  io.Writer
}

// addHostsFlag gives cmd a --hosts flag; what says what the command does
// to the hosts named ("deploy only to").
func (c *common) addHostsFlag(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&c.hosts, "hosts", "", what+" these `HOSTS` (comma list of hosts-file entries or addresses), in file order")
}

// selectedHosts are the hosts of --hosts (every host without it), in file
// order.
func (c *common) selectedHosts(cfg *config.Config) ([]deploy.Host, error) {
	hosts, err := deploy.SelectHosts(cfg.Hosts, splitList(c.hosts))
	if err != nil {
		return nil, usagef("--hosts: %v", err)
	}
	return hosts, nil
}

// setupApp reads the configuration, picks the app --app names (see
// pickApp) and returns the logger every command prints its progress
// with, and the configuration of every app besides.
func (c *common) setupApp() (*slog.Logger, *config.Setup, *config.App, error) {
	log, s, err := c.setupAll()
	if err != nil {
		return nil, nil, nil, err
	}
	app, err := c.pickApp(s)
	return log, s, app, err
}

// setupAll reads the configuration of every app, for the commands that
// work on all of them (serve, apps, check without --app).
func (c *common) setupAll() (*slog.Logger, *config.Setup, error) {
	log := c.logger(c.stderr)
	s, err := c.load(log)
	return log, s, err
}

// newRoot is the command tree. Every command's help has its --long flags
// and examples, printed to stdout; `pushdeploy completion bash|zsh|fish`
// writes a completion script.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	c := &common{stderr: stderr}
	root := &cobra.Command{
		Use:   "pushdeploy",
		Short: "ship the release branch to every host over SSH",
		Long: `pushdeploy ships the release branch of your app's git repository to every
host over SSH: a fresh release folder and virtualenv per deploy, and an
atomic switch of the current symlink.

Exit status: 0 done, 1 the deploy, rollback or a check failed, 2 bad
configuration or usage.
Reference: docs/configuration.md, docs/deploy.md, docs/releases.md,
docs/serve.md, docs/webhooks.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Bare `pushdeploy`: the usage on stderr, exit 2.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return &usageError{msg: "no command given", cmd: "pushdeploy"}
		},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
			}
			return &usageError{msg: msg, cmd: "pushdeploy"}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: err.Error(), cmd: cmd.CommandPath()}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.envFile, "env-file", "", "read DEPLOY_ variables from `FILE` (default: "+config.DefaultEnvFile+" when it exists); the real environment wins over the file")
	pf.BoolVar(&c.json, "json", false, "JSON lines on stderr (progress) and stdout (results)")
	pf.BoolVarP(&c.verbose, "verbose", "v", false, "show each line the remote commands print as it comes (deploy, rollback)")
	_ = root.MarkPersistentFlagFilename("env-file", "env")
	root.AddCommand(
		newServeCommand(c),
		newDeployCommand(c),
		newRollbackCommand(c),
		newReleasesCommand(c),
		newCheckCommand(c),
		newHistoryCommand(c),
		newAppsCommand(c),
		newInitCommand(c),
		&cobra.Command{
			Use:   "version",
			Short: "print the version, the VCS revision it was built from, Go and the platform",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprintln(cmd.OutOrStdout(), versionString())
				return nil
			},
		},
	)
	root.SuggestionsMinimumDistance = 2
	// --version as a flag too, without cobra's -v shorthand.
	root.Flags().Bool("version", false, "print the version")
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// durationFlag is a time.Duration flag whose error says what a bare number
// lacks: `--grace 5` is refused with "a unit is needed", not Go's parser's
// wording.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Type() string { return "duration" }

func (f durationFlag) Set(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Errorf("%q needs a unit: e.g. %ss or %sm (units: ms, s, m, h)", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: e.g. 90s, 2m or 1h30m", s)
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*f.d = d
	return nil
}

var _ pflag.Value = durationFlag{}

// noArgs refuses positional arguments, naming the first: every command
// takes flags only.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", cmd.Name(), args[0]), cmd: cmd.CommandPath()}
	}
	return nil
}

// load reads the configuration and prints its warnings.
func (c *common) load(log *slog.Logger) (*config.Setup, error) {
	file, explicit := c.envFile, c.envFile != ""
	if !explicit {
		file = config.DefaultEnvFile
	}
	s, warnings, err := config.LoadSetup(file, explicit)
	// Warnings too when there are errors: a key file others can read is
	// worth knowing while fixing the rest.
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c *common) logger(stderr io.Writer) *slog.Logger {
	if c.json {
		return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: secondsAttr}))
	}
	h := newProgressHandler(stderr)
	h.color = useColor(stderr)
	return slog.New(h)
}

// splitList splits a comma list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
