package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestVisible(t *testing.T) {
	for _, tt := range []struct {
		in, want, wantNL string
	}{
		{"plain text, tabs\tand é ✓", "plain text, tabs\tand é ✓", "plain text, tabs\tand é ✓"},
		{"\x1b]0;owned\x07title", `\x1b]0;owned\x07title`, `\x1b]0;owned\x07title`},
		{"ok\rFAKE LINE", `ok\x0dFAKE LINE`, `ok\x0dFAKE LINE`},
		{"\x1b[2K\x1b[1Ahidden", `\x1b[2K\x1b[1Ahidden`, `\x1b[2K\x1b[1Ahidden`},
		{"two\nlines", `two\x0alines`, "two\nlines"},
		{"c1 \u009b31m and bidi \u202eabc", `c1 \u009b31m and bidi \u202eabc`, `c1 \u009b31m and bidi \u202eabc`},
		{"bad \xff byte, DEL \x7f, NUL \x00", `bad \xff byte, DEL \x7f, NUL \x00`, `bad \xff byte, DEL \x7f, NUL \x00`},
	} {
		if got := visible(tt.in, false); got != tt.want {
			t.Errorf("visible(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := visible(tt.in, true); got != tt.wantNL {
			t.Errorf("visible(%q, newlines) = %q, want %q", tt.in, got, tt.wantNL)
		}
	}
}

// TestProgressPrintsHostTextVisibly: what a hook prints, a failed step's
// error and a forged header reach the terminal as text: escape sequences
// and carriage returns are shown as escapes (they could hide lines or set
// the window's title), and a value with a space or '=' is quoted (a
// header "push decision=queued" was printed as two fields).
func TestProgressPrintsHostTextVisibly(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newProgressHandler(&buf))
	hl := log.With("host", "web1")
	hl.Info("output", "step", "before-switch", "line", "\x1b]0;owned\x07\x1b[2Kgone\tok")
	hl.Error("step failed", "step", "pip", "error", "exit status 1\n    ERROR\r\x1b[1Aover", "output", "one\x1b[31m\ntwo\rX")
	log.Warn("webhook rejected", "event", "push decision=queued", "delivery", "d-1", "reason", "bad delivery id")
	got := buf.String()
	for _, want := range []string{
		`web1                 before-switch | \x1b]0;owned\x07\x1b[2Kgone` + "\tok\n",
		`web1                 pip           FAILED after 0.00s: exit status 1` + "\n" + `    ERROR\x0d\x1b[1Aover` + "\n",
		`    | one\x1b[31m` + "\n" + `    | two\x0dX` + "\n",
		`warn: webhook rejected  event="push decision=queued" delivery=d-1 reason="bad delivery id"` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("progress output lacks %q:\n%s", want, got)
		}
	}
	if strings.ContainsAny(got, "\x1b\r\x07") {
		t.Errorf("progress output holds raw control characters: %q", got)
	}
}
