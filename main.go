// Command pushdeploy ships the release branch of a git repository to a pool
// of Linux hosts over SSH: a release folder per deploy, a fresh Python
// virtualenv, and an atomic switch of the `current` symlink.
//
// See README.md and docs/ for usage; the command line is internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pushdeploy/pushdeploy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Exit(err, os.Args[1:], os.Stderr))
}
