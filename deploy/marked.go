package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// A marked command is one long remote command that runs several steps of
// a host (phase.sh): a round trip for all of them instead of one each.
// The script marks where each step begins and ends on its stdout, with a
// nonce chosen here for the run and sent on its stdin (never on its
// command line, where the repository's code could read it): a line
// "\x1epushdeploy NONCE begin STEP", the step's own output, then
// "\x1epushdeploy NONCE end STEP STATUS". Other marks say what the script
// waits for ("wait", "upload"), what it learnt ("root PATH"), or that it
// is done ("built", "stopped STEP", "held"). The deployer reads the marks
// and records each step as if it had been its own command: its duration,
// output, status and failure. Lines it sends on the command's stdin move
// the script on; closing the stdin ends it.
type markedRun struct {
	r      *hostRun
	prefix []byte // "\x1epushdeploy NONCE "
	ctl    *io.PipeWriter
	events chan markEvent
	gone   chan struct{} // closed by close: nobody reads events any more
	done   chan struct{}
	err    error // the command's own result, once done is closed
	cancel context.CancelFunc
	stray  *tailBuffer   // output outside any step, and the command's stderr
	last   Step          // the step begun last
	passed map[Step]bool // the steps that ended well
}

// markEvent is a line of output ("" kind) or a mark.
type markEvent struct {
	kind string // "" for a line of output; else the mark's first word
	text string // the line (with its newline), or the rest of the mark
}

// newNonce is a fresh random nonce for one marked command.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// startMarked starts cmd, whose stdin gets header (after the nonce line)
// and then the lines sent with send. ctx bounds the command's whole life.
func (r *hostRun) startMarked(ctx context.Context, cmd Command, header string) *markedRun {
	nonce := newNonce()
	pr, pw := io.Pipe()
	cctx, cancel := context.WithCancel(ctx)
	m := &markedRun{
		r: r, prefix: []byte("\x1epushdeploy " + nonce + " "), ctl: pw,
		events: make(chan markEvent, 256), gone: make(chan struct{}), done: make(chan struct{}), cancel: cancel,
		stray: newTail(4 << 10), passed: map[Step]bool{},
	}
	w := &markWriter{m: m}
	cmd.Stdin = io.MultiReader(strings.NewReader(nonce+"\n"+header), pr)
	cmd.Stdout, cmd.Stderr = w, m.stray
	go func() {
		err := r.conn.Run(cctx, cmd)
		w.flush()
		pr.CloseWithError(errCommandEnded) // a send after the end fails at once
		m.err = err
		close(m.events)
		close(m.done)
	}()
	return m
}

var errCommandEnded = errors.New("the command has ended")

// send gives the script a line.
func (m *markedRun) send(line string) error {
	_, err := io.WriteString(m.ctl, line+"\n")
	return err
}

// close ends the command (its stdin's end lets the script go, freeing the
// host lock it holds) and waits a little for it.
func (m *markedRun) close() {
	close(m.gone)
	m.ctl.Close()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
	m.cancel()
}

// next returns the next event; ok is false once the command has ended and
// its output is all read.
func (m *markedRun) next(ctx context.Context) (markEvent, bool, error) {
	select {
	case ev, ok := <-m.events:
		return ev, ok, nil
	case <-ctx.Done():
		return markEvent{}, false, ctx.Err()
	}
}

// ended is the error for a command that ended where it should not have.
func (m *markedRun) ended() error {
	err := m.err
	if err == nil {
		err = errors.New("the command ended early")
	}
	if out := strings.TrimSpace(m.stray.String()); out != "" {
		return fmt.Errorf("%w: %s", err, out)
	}
	return err
}

// follow records the marked steps as they come until one of the marks in
// until, which it returns (with its text); a failed step, a stop or the
// command's end is an error (a *StepError). onMark hears the marks inside
// a step (prepare's "root").
func (m *markedRun) follow(ctx context.Context, onMark func(markEvent) error, until ...string) (markEvent, error) {
	for {
		// Between steps the script has nothing to wait for: a host that
		// says nothing for longer than a step may take is gone.
		wctx, cancel := context.WithTimeout(ctx, m.r.d.StepTimeout+markGrace)
		ev, ok, err := m.next(wctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			m.cancel()
			return ev, m.failed(m.last, fmt.Errorf("the host said nothing for %s", m.r.d.StepTimeout+markGrace))
		case err != nil:
			return ev, m.failed(m.last, err)
		case !ok:
			return ev, m.failed(m.last, m.ended())
		}
		for _, u := range until {
			if ev.kind == u {
				return ev, nil
			}
		}
		switch ev.kind {
		case "":
			_, _ = m.stray.Write([]byte(ev.text))
		case "begin":
			m.last = Step(ev.text)
			if err := m.step(ctx, Step(ev.text), onMark); err != nil {
				return ev, err
			}
		case "stopped":
			return ev, m.r.step(ctx, Step(ev.text), func(context.Context, io.Writer) error { return m.r.dep.stopError() })
		case "held":
			return ev, m.failed(m.last, errors.New(orDefault(strings.TrimSpace(m.stray.String()), "the host's script stopped")))
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// failed records err as a failure of step (the one under way, or the one
// begun last) that the script could not mark itself.
func (m *markedRun) failed(step Step, err error) error {
	if step == "" {
		step = StepPrepare
	}
	m.r.log.Error("step failed", "step", step, "error", err)
	return &StepError{Host: m.r.res.Host.String(), Step: step, Err: err, Output: m.stray.String()}
}

// markGrace is how much longer than the step timeout the deployer waits
// for a step's end mark: the host's own timeout ends the step first (with
// its kill 10 s later), and says so.
const markGrace = 15 * time.Second

// step records the step that just began, up to its end mark; the step's
// own begin mark may still come (the first step of a command is recorded
// from the command's start: a host that does not answer shows in it).
func (m *markedRun) step(ctx context.Context, name Step, onMark func(markEvent) error) error {
	r := m.r
	// Not stoppable here: the step runs already (the script looks for a
	// stop between steps).
	return r.stepWith(ctx, name, false, func(_ context.Context, out io.Writer) error {
		// Not the step's own context: the host's timeout is the one
		// that should end the step, with its own exit status.
		wctx, cancel := context.WithTimeout(ctx, r.d.StepTimeout+markGrace)
		defer cancel()
		var lockOut strings.Builder // the lock's answer, when it was busy
		for {
			ev, ok, err := m.next(wctx)
			switch {
			case err != nil && ctx.Err() == nil:
				m.cancel() // it hangs: stop it
				return fmt.Errorf("timed out after %s (DEPLOY_STEP_TIMEOUT)", r.d.StepTimeout)
			case err != nil:
				return err
			case !ok:
				return m.ended()
			}
			switch ev.kind {
			case "":
				_, _ = io.WriteString(out, ev.text)
				if name == StepLock && lockOut.Len() < 4<<10 {
					lockOut.WriteString(ev.text)
				}
			case "begin":
				if ev.text != string(name) {
					return fmt.Errorf("unexpected mark begin %s in step %s", ev.text, name)
				}
			case "end":
				err := m.endOf(name, ev.text, lockOut.String())
				m.passed[name] = err == nil
				return err
			default:
				if onMark != nil {
					if err := onMark(ev); err != nil {
						return err
					}
				}
			}
		}
	})
}

// endOf is the result of the step name from its end mark "STEP STATUS".
func (m *markedRun) endOf(name Step, text, lockOut string) error {
	step, status, _ := strings.Cut(text, " ")
	rc, err := strconv.Atoi(status)
	if step != string(name) || err != nil {
		return fmt.Errorf("unexpected mark %q in step %s", text, name)
	}
	switch {
	case rc == 0:
		return nil
	case name == StepLock && rc == 75:
		return fmt.Errorf("%w: %s; gave up after %s (DEPLOY_LOCK_TIMEOUT)", ErrBusy, busyReason(lockOut), m.r.d.lockWait())
	}
	return &ExitError{Status: rc}
}

// markWriter splits the command's stdout into lines and marks. A mark is
// recognised anywhere in a line (a step's output need not end with a
// newline), but only with the run's nonce.
type markWriter struct {
	m     *markedRun
	lines lineSplitter
}

func (w *markWriter) Write(p []byte) (int, error) {
	w.lines.write(p, w.line, func(b []byte) int {
		// A long line without its end: pass it on, but keep what may be
		// the start of a mark.
		cut := len(b)
		if j := bytes.LastIndexByte(b, 0x1e); j >= 0 && len(b)-j <= len(w.m.prefix)+64 {
			cut = j
		}
		w.emit(markEvent{text: string(b[:cut])})
		return cut
	})
	return len(p), nil
}

func (w *markWriter) flush() { w.lines.flush(w.line) }

func (w *markWriter) line(l []byte) {
	i := bytes.Index(l, w.m.prefix)
	if i < 0 {
		w.emit(markEvent{text: string(l)})
		return
	}
	if i > 0 {
		w.emit(markEvent{text: string(l[:i]) + "\n"})
	}
	mark := strings.TrimRight(string(l[i+len(w.m.prefix):]), "\n")
	kind, text, _ := strings.Cut(mark, " ")
	w.emit(markEvent{kind: kind, text: text})
}

func (w *markWriter) emit(ev markEvent) {
	select {
	case w.m.events <- ev:
	case <-w.m.gone:
	}
}
