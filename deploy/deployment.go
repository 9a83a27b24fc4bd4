package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is where a deployment, a host or a step stands.
type Status string

const (
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusSkipped   Status = "skipped"
)

// Deployment is one run of the deployer: one release shipped to a list of
// hosts, one after another.
type Deployment struct {
	ID          string
	Action      string // "deploy"
	Release     Release
	ReleaseName string
	Started     time.Time
	Finished    time.Time
	Status      Status
	Hosts       []*HostResult
	Err         error
}

// HostResult is what happened on one host.
type HostResult struct {
	Host     Host
	Status   Status
	Steps    []StepResult
	Duration time.Duration
}

// StepResult is one step on one host.
type StepResult struct {
	Name     string
	Status   Status
	Started  time.Time
	Duration time.Duration
	// Output is the tail of the step's remote output (stdout and stderr).
	Output string
	Err    error
}

// StepError is a step that failed on a host. Its message names the host,
// the step, the error and the failing command's own output.
type StepError struct {
	Host   string
	Step   string
	Err    error
	Output string // tail of the command's output
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("host %s: %s: %v", e.Host, e.Step, e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += "\n" + indent(out, "    ")
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// ErrBusy is returned when another deployer holds a host's lock for longer
// than the lock timeout.
var ErrBusy = errors.New("host busy")

// newID returns a deployment id: the start time and a random suffix, so
// ids sort by time and never collide between deployer processes. It only
// holds [0-9a-z-], so it is safe in file names on the hosts.
func newID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
