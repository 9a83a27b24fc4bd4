package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzNames seeds the validator and quoting fuzzers: good names, names each
// validator must refuse, and shell metacharacters.
var fuzzNames = []string{
	"release", "main", "feature/x-1", "v1.2", "20261125183400-1a2b3c4", "4f56267", strings.Repeat("a", 40),
	"/srv/app", "app", "app;touch x;$(touch x)`touch x`", "it's", "'", `"`, `\`, "a\nb", "a\x00b", "-rf", "--upload-pack=touch x",
	"../release", "a/../b", "..", ".", "a..b", "a/.b", "a.lock", "@", "@{-1}", "HEAD", "a b", "a\tb", "~x", "*", "?",
	"[a]", "a^", "a:b", "$HOME", "${IFS}", "$((1+1))", "!x", "a|b", "a&b", "a>b", "a<b", "#x", "{a,b}", "é", "\xff",
	"a\r", "a\x7f", "%s", "=x", "a=b", "a/", "/a", "a//b", "a.", "\u2028",
}

// shellEcho runs the POSIX shell on script with the arguments, in an empty
// folder that is also HOME, and returns what it printed. The folder must
// still be empty afterwards: quoted values never run anything.
func shellEcho(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, stderr.String())
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Fatalf("sh -c %q created files in its folder (%v, %v): a quoted value ran a command", script, entries, err)
	}
	return stdout.String()
}

// FuzzQuote: whatever the string (bar NUL, which no C string holds), Quote
// makes it one shell word that arrives exactly as it was, and runs nothing.
// The property is checked with the real /bin/sh: the quoted word is the
// positional parameter of `sh -c 'printf %s "$1"' sh WORD`.
func FuzzQuote(f *testing.F) {
	for _, s := range fuzzNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		q := Quote(s)
		if q != s && (!strings.HasPrefix(q, "'") || !strings.HasSuffix(q, "'")) {
			t.Fatalf("Quote(%q) = %q: neither plain nor single-quoted", s, q)
		}
		got := shellEcho(t, "sh -c 'printf %s \"$1\"' sh "+q)
		if got != s {
			t.Fatalf("sh -c 'printf %%s \"$1\"' sh %s printed %q, want %q", q, got, s)
		}
	})
}

// FuzzCommandString: a Command with hostile arguments and environment
// values renders to a line the shell runs as exactly those arguments.
func FuzzCommandString(f *testing.F) {
	for i, s := range fuzzNames {
		f.Add(s, fuzzNames[(i+7)%len(fuzzNames)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsRune(a, 0) || strings.ContainsRune(b, 0) {
			return
		}
		c := Command{
			Env:  []string{"PD_X=" + b},
			Args: []string{"sh", "-c", `printf '%s|%s|%s' "$PD_X" "$1" "$#"`, "sh", a},
		}
		want := b + "|" + a + "|1"
		if got := shellEcho(t, c.String()); got != want {
			t.Fatalf("%s printed %q, want %q", c.String(), got, want)
		}
	})
}

// FuzzValidators checks what each validator accepts: nothing that could be
// read as an option, climb out of a folder, end a line or hide a NUL; and a
// branch name ValidBranch accepts is one git accepts too (checked with the
// real git).
func FuzzValidators(f *testing.F) {
	for _, s := range fuzzNames {
		f.Add(s)
	}
	git, gitErr := exec.LookPath("git")
	f.Fuzz(func(t *testing.T, s string) {
		control := strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
		if ValidBranch(s) == nil {
			switch {
			case control, strings.HasPrefix(s, "-"), strings.Contains(s, ".."), s == "",
				strings.ContainsAny(s, " \t'\"`$;|&<>(){}[]*?!#~\\^:=%,"):
				t.Fatalf("ValidBranch accepted %q", s)
			}
			if gitErr != nil {
				t.Fatalf("git is needed to check branch names: %v", gitErr)
			}
			if out, err := exec.Command(git, "check-ref-format", "--branch", s).CombinedOutput(); err != nil {
				t.Fatalf("ValidBranch accepted %q, git check-ref-format --branch refuses it: %v %s", s, err, out)
			}
		}
		if ValidCommit(s) == nil && (len(s) != 40 && len(s) != 64 || strings.ToLower(s) != s) {
			t.Fatalf("ValidCommit accepted %q", s)
		}
		if ValidCommitPrefix(s) == nil && (len(s) < 4 || len(s) > 64 || strings.Trim(s, "0123456789abcdefABCDEF") != "") {
			t.Fatalf("ValidCommitPrefix accepted %q", s)
		}
		if ValidReleaseName(s) == nil && (len(s) != 22 || Quote(s) != s) {
			t.Fatalf("ValidReleaseName accepted %q", s)
		}
		if ValidPath(s) == nil {
			if control || s == "" {
				t.Fatalf("ValidPath accepted %q", s)
			}
			for _, part := range strings.Split(s, "/") {
				if part == ".." {
					t.Fatalf("ValidPath accepted %q", s)
				}
			}
		}
		for _, err := range []error{ValidBranch(s), ValidCommit(s), ValidCommitPrefix(s), ValidReleaseName(s), ValidPath(s)} {
			if err != nil && !utf8.ValidString(err.Error()) {
				t.Fatalf("error for %q is not valid UTF-8: %q", s, err)
			}
		}
	})
}
