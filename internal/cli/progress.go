package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// progressHandler prints deploy progress for people: one line per host and
// step with its duration, and a failing command's or a hook's output
// indented below. What hosts and requests sent is printed visibly
// (control characters as escapes, visible.go), and other values are
// quoted when they could pass for more fields.
//
//	20:31:02 web1                 fetch         0.44s
//	20:31:06 web1                 pip           FAILED after 1.20s: exit status 1
//	    | ERROR: No matching distribution found for flask==9.9
type progressHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	attrs []slog.Attr
	color bool // failures red, warnings yellow, success green (terminals only)
}

func newProgressHandler(w io.Writer) *progressHandler {
	return &progressHandler{mu: &sync.Mutex{}, w: w}
}

func (h *progressHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *progressHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *progressHandler) WithGroup(string) slog.Handler { return h }

func (h *progressHandler) Handle(_ context.Context, r slog.Record) error {
	var host, step, output, errText, deployment, line string
	var dur, running time.Duration
	var rest []string
	take := func(a slog.Attr) bool {
		switch a.Key {
		case "host":
			host = visible(a.Value.String(), false)
		case "step":
			step = visible(a.Value.String(), false)
		case "duration":
			dur = a.Value.Duration()
		case "output":
			output = a.Value.String()
		case "error":
			errText = visible(a.Value.String(), true)
		case "deployment":
			deployment = logValue(a.Value.String())
		case "running":
			running = a.Value.Duration()
		case "line":
			line = visible(a.Value.String(), false)
		default:
			rest = append(rest, a.Key+"="+logValue(a.Value.String()))
		}
		return true
	}
	for _, a := range h.attrs {
		take(a)
	}
	r.Attrs(take)
	msg := visible(r.Message, true)

	var b strings.Builder
	b.WriteString(r.Time.Format("15:04:05") + " ")
	if r.Level >= slog.LevelWarn && step == "" {
		b.WriteString(strings.ToLower(r.Level.String()) + ": ")
	}
	if host != "" || step != "" {
		fmt.Fprintf(&b, "%-20s %-13s ", host, step)
		switch {
		case errText != "":
			b.WriteString(h.paint(red, fmt.Sprintf("FAILED after %.2fs: %s", dur.Seconds(), errText)))
		case r.Message == "still running":
			fmt.Fprintf(&b, "running %s…", running)
		case r.Message == "output":
			b.WriteString("| " + line)
		case r.Message == "step done" || r.Message == "resolved":
			fmt.Fprintf(&b, "%.2fs", dur.Seconds())
		default:
			b.WriteString(msg)
		}
	} else {
		switch {
		case r.Level >= slog.LevelError || strings.HasSuffix(r.Message, " failed"):
			b.WriteString(h.paint(red, msg))
		case r.Level >= slog.LevelWarn:
			b.WriteString(h.paint(yellow, msg))
		case strings.HasSuffix(r.Message, " succeeded"):
			b.WriteString(h.paint(green, msg))
		default:
			b.WriteString(msg)
		}
		if dur > 0 {
			fmt.Fprintf(&b, " in %.2fs", dur.Seconds())
		}
		if errText != "" {
			b.WriteString(": " + errText)
		}
	}
	if r.Message == "step done" || r.Message == "resolved" {
		rest = nil // the commit is printed once, by "deploying"
	}
	if deployment != "" && host == "" && step == "" {
		// Host and step lines belong to the deployment announced above.
		rest = append([]string{"deployment=" + deployment}, rest...)
	}
	if len(rest) > 0 {
		b.WriteString("  " + strings.Join(rest, " "))
	}
	b.WriteString("\n")
	// A failing command's output, and a hook's (only hooks' successful
	// steps carry it).
	if out := strings.TrimSpace(output); out != "" {
		for _, l := range strings.Split(out, "\n") {
			b.WriteString("    | " + visible(l, false) + "\n")
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// ANSI colours, used only when the handler's color is set.
const (
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	green  = "\x1b[32m"
)

// paint colours s when colour is on.
func (h *progressHandler) paint(color, s string) string {
	if !h.color {
		return s
	}
	return color + s + "\x1b[0m"
}

// secondsAttr writes durations as seconds in JSON logs, which monitoring
// tools read more easily than nanoseconds.
func secondsAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_s", a.Value.Duration().Seconds())
	}
	return a
}
