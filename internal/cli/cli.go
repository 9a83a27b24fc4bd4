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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
)

const usageText = `pushdeploy ships the release branch to every host over SSH.

Usage:
  pushdeploy serve [--grace 2m]                    webhook receiver, API and health endpoint; deploys from one queue
  pushdeploy deploy [--commit SHA] [--hosts H,H] [--dry-run]
                                                   deploy the branch tip (or a commit on the branch) now
  pushdeploy rollback [--to RELEASE] [--dry-run]   point current back on every host (default: the release before current)
  pushdeploy releases                              per host: releases, their commits, which is current
  pushdeploy check                                 preflight: config, keys, host keys, SSH logins, python, git access
  pushdeploy version

Flags of every command:
  --env-file FILE   read DEPLOY_ variables from FILE (default: deploy.env when it exists);
                    the real environment wins over the file
  --json            progress (stderr) and results (stdout) as JSON lines

Exit status: 0 done, 1 the deploy, rollback or a check failed, 2 bad configuration or usage.
Reference: docs/configuration.md, docs/deploy.md, docs/releases.md, docs/serve.md, docs/webhooks.md.
`

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

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
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pushdeploy: %v\nRun 'pushdeploy help' for usage.\n", err)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "pushdeploy: bad configuration:\n%v\n", err)
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "pushdeploy: %v\n", err)
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
		case "--json", "-json", "--json=true", "-json=true":
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
// tests call run directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "deploy":
		return runDeploy(ctx, rest, stdout, stderr)
	case "rollback":
		return runRollback(ctx, rest, stdout, stderr)
	case "releases":
		return runReleases(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

// common are the flags every command takes.
type common struct {
	envFile string
	json    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.envFile, "env-file", "", "read DEPLOY_ variables from `FILE` (default: "+config.DefaultEnvFile+" when it exists)")
	fs.BoolVar(&c.json, "json", false, "JSON lines on stderr (progress) and stdout (results)")
}

func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// load reads the configuration and prints its warnings.
func (c *common) load(log *slog.Logger) (*config.Config, error) {
	file, explicit := c.envFile, c.envFile != ""
	if !explicit {
		file = config.DefaultEnvFile
	}
	cfg, warnings, err := config.Load(file, explicit)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	return cfg, nil
}

func (c *common) logger(stderr io.Writer) *slog.Logger {
	if c.json {
		return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: secondsAttr}))
	}
	return slog.New(newProgressHandler(stderr))
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
