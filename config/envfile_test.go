package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kelseyhightower/envconfig"
)

// TestParseEnvFile: the env file is read literally. Nothing is expanded
// ($HOME, ${X}, $(cmd) and backquotes stay as written), backslashes are
// kept except where the quoting rules make them escapes, and # inside
// quotes is part of the value.
func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name, content string
		want          []envEntry
	}{
		{"dollar unquoted", `A=$HOME/bin/app-restart $HOME/app` + "\n", []envEntry{{"A", "$HOME/bin/app-restart $HOME/app", 1}}},
		{"dollar forms", `A=${X} $(id -u) ` + "`id` $ $1 $$\n", []envEntry{{"A", "${X} $(id -u) `id` $ $1 $$", 1}}},
		{"dollar double-quoted", `A="$HOME ${X} $(id)"` + "\n", []envEntry{{"A", "$HOME ${X} $(id)", 1}}},
		{"dollar single-quoted", `A='$HOME ${X} $(id)'` + "\n", []envEntry{{"A", "$HOME ${X} $(id)", 1}}},
		{"a variable the file sets is not expanded either", "DEPLOY_ROOT=/srv/x\nA=$DEPLOY_ROOT/y\n", []envEntry{{"DEPLOY_ROOT", "/srv/x", 1}, {"A", "$DEPLOY_ROOT/y", 2}}},
		{"backslashes unquoted", `A=printf 'a\nb' C:\dir\ \\` + "\n", []envEntry{{"A", `printf 'a\nb' C:\dir\ \\`, 1}}},
		{"backslash-dollar unquoted", `A=echo \$HOME \\$X` + "\n", []envEntry{{"A", `echo $HOME \$X`, 1}}},
		{"backslashes single-quoted", `A='a\nb \$X \\ \'` + "\n", []envEntry{{"A", `a\nb \$X \\ \`, 1}}},
		{"escapes double-quoted", `A="a\nb\rc \\ \" \$X \q"` + "\n", []envEntry{{"A", "a\nb\rc \\ \" $X q", 1}}},
		{"double-quoted value ending in a backslash", `A="a\\"` + "\n", []envEntry{{"A", `a\`, 1}}},
		{"escaped quotes at both ends", `A="\"hello\""` + "\n", []envEntry{{"A", `"hello"`, 1}}},
		{"hash in quotes", "A='a # b'\nB=\"c # d\" # a comment\nC='#'#c\n", []envEntry{{"A", "a # b", 1}, {"B", "c # d", 2}, {"C", "#", 3}}},
		{"hash unquoted", "A=a#b\nB=c # d # e\nC= #f\nD=\t g\t#h\n", []envEntry{{"A", "a#b", 1}, {"B", "c", 2}, {"C", "#f", 3}, {"D", "g", 4}}},
		{"quotes inside unquoted", `A=it's "x"` + "\n", []envEntry{{"A", `it's "x"`, 1}}},
		{"blanks", "  A = 1  \n\tB\t=\t'  2  '\t\n", []envEntry{{"A", "1", 1}, {"B", "  2  ", 2}}},
		{"empty", "A=\nB=''\nC=\"\"\nD=", []envEntry{{"A", "", 1}, {"B", "", 2}, {"C", "", 3}, {"D", "", 4}}},
		{"export, comments, blank lines", "# c\n\n  # d\nexport A=1\nexport\tB=2\n", []envEntry{{"A", "1", 4}, {"B", "2", 5}}},
		{"lower case and dots are names", "deploy_branch=x\na.b=y\n", []envEntry{{"deploy_branch", "x", 1}, {"a.b", "y", 2}}},
		{"crlf", "A=1\r\nB='2'\r\n# c\r\nC=3\r\n", []envEntry{{"A", "1", 1}, {"B", "2", 2}, {"C", "3", 4}}},
		{"lone carriage returns end lines", "A=1\rB=2\r", []envEntry{{"A", "1", 1}, {"B", "2", 2}}},
		{"multi-line values", "A='x\ny'\nB=\"1\n2\n3\"\nC=z\n", []envEntry{{"A", "x\ny", 1}, {"B", "1\n2\n3", 3}, {"C", "z", 6}}},
		{"set twice", "A=1\nA=2\n", []envEntry{{"A", "1", 1}, {"A", "2", 2}}},
		{"no newline at the end", "A='1'", []envEntry{{"A", "1", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEnvFile([]byte(tt.content))
			if err != nil {
				t.Fatalf("parseEnvFile(%q): %s", tt.content, err.problem("f"))
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(envEntry{})); diff != "" {
				t.Errorf("parseEnvFile(%q) (-want +got):\n%s", tt.content, diff)
			}
		})
	}
}

// TestParseEnvFileErrors: what cannot be read is refused with the line at
// fault, never read some other way.
func TestParseEnvFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          envSyntaxError
	}{
		{"unterminated single", "A=1\nB='x\nC=2\n", envSyntaxError{line: 2, unterminated: true}},
		{"unterminated double", "A=\"x\\\"\n", envSyntaxError{line: 1, unterminated: true}},
		// A single-quoted value cannot hold a single quote (as in a shell,
		// and in systemd's EnvironmentFile=).
		{"backslash does not escape in single quotes", `A='it\'s'` + "\n", envSyntaxError{line: 1}},
		{"junk after the quote", "A='x' y\n", envSyntaxError{line: 1}},
		{"junk after a multi-line value", "A=\"x\ny\" z\n", envSyntaxError{line: 2}},
		{"two statements on a line", "A=\"x\" B=y\n", envSyntaxError{line: 1}},
		{"no =", "A=1\nB\n", envSyntaxError{line: 2}},
		{"colon instead of =", "A: 1\n", envSyntaxError{line: 1}},
		{"bad name", "A-B=1\n", envSyntaxError{line: 1}},
		{"no name", "=1\n", envSyntaxError{line: 1}},
		{"space in the name", "A B=1\n", envSyntaxError{line: 1}},
		{"export alone", "export\n", envSyntaxError{line: 1}},
		{"non-ASCII blank", "\u00a0A=1\n", envSyntaxError{line: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseEnvFile([]byte(tt.content))
			if err == nil || *err != tt.want {
				t.Errorf("parseEnvFile(%q) = error %+v, want %+v", tt.content, err, tt.want)
			}
		})
	}
}

// TestLoadKeepsValuesAsWritten: values with $, backslashes and # arrive
// in the Config as written, from the env file (named or the default
// deploy.env) and from the real environment alike.
func TestLoadKeepsValuesAsWritten(t *testing.T) {
	const restart = `$HOME/bin/app-restart ${X} "$(id -u)" \n 'a#b' #c`
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(restart)
	file := `DEPLOY_RESTART_CMD="` + quoted + `"` + "\n" +
		`DEPLOY_HEALTH_URL=http://{host}:8000/$HOME?a=${X}` + "\n" +
		`DEPLOY_PYTHON="/opt/$(x)/py\\thon"` + "\n"
	want := func(t *testing.T, c *Config) {
		t.Helper()
		if c.RestartCmd != restart {
			t.Errorf("RestartCmd = %q, want %q", c.RestartCmd, restart)
		}
		if want := "http://{host}:8000/$HOME?a=${X}"; c.HealthURL != want {
			t.Errorf("HealthURL = %q, want %q", c.HealthURL, want)
		}
		if want := `/opt/$(x)/py\thon`; c.Python != want {
			t.Errorf("Python = %q, want %q", c.Python, want)
		}
	}
	for _, tt := range []struct {
		name     string
		file     string // "": deploy.env
		explicit bool
	}{
		{"--env-file", "prod.env", true},
		{"deploy.env", DefaultEnvFile, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			t.Setenv("X", "expanded")
			writeFile(t, filepath.Join(f.dir, tt.file), file, 0o600)
			c, _, err := Load(tt.file, tt.explicit)
			if err != nil {
				t.Fatal(err)
			}
			want(t, c)
		})
	}
	t.Run("environment", func(t *testing.T) {
		setup(t)
		t.Setenv("X", "expanded")
		t.Setenv("DEPLOY_RESTART_CMD", restart)
		t.Setenv("DEPLOY_HEALTH_URL", "http://{host}:8000/$HOME?a=${X}")
		t.Setenv("DEPLOY_PYTHON", `/opt/$(x)/py\thon`)
		c, _, err := Load("", false)
		if err != nil {
			t.Fatal(err)
		}
		want(t, c)
	})
}

// TestLoadLeavesTheEnvironment: Load puts the env file's values into the
// Config only. The process environment is as before, so a child process
// never sees the file's secrets; the real environment still wins.
func TestLoadLeavesTheEnvironment(t *testing.T) {
	f := setup(t)
	t.Setenv("DEPLOY_BRANCH", "from-env")
	t.Setenv("BRANCH", "unprefixed")
	writeFile(t, filepath.Join(f.dir, "deploy.env"),
		"DEPLOY_API_TOKEN=s3cret-token\nDEPLOY_WEBHOOK_SECRET='s3cret-hook'\nDEPLOY_BRANCH=from-file\n", 0o600)
	before := os.Environ()
	c, _, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIToken != "s3cret-token" || c.WebhookSecret != "s3cret-hook" || c.Branch != "from-env" {
		t.Errorf("got APIToken %q, WebhookSecret %q, Branch %q; want the file's secrets and the environment's branch",
			c.APIToken, c.WebhookSecret, c.Branch)
	}
	if diff := cmp.Diff(before, os.Environ()); diff != "" {
		t.Errorf("Load changed the environment (-before +after):\n%s", diff)
	}
	if v, ok := os.LookupEnv("DEPLOY_API_TOKEN"); ok {
		t.Errorf("DEPLOY_API_TOKEN is in the environment: %q", v)
	}
	out, err := exec.Command("env").Output()
	if err != nil {
		t.Fatal(err)
	}
	var deployVars []string
	for _, kv := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(kv, Prefix+"_") {
			deployVars = append(deployVars, kv)
		}
	}
	if strings.Contains(string(out), "s3cret") || !slices.Contains(deployVars, "DEPLOY_BRANCH=from-env") {
		t.Errorf("a child process sees %q; want the real environment's, without the file's secrets", deployVars)
	}
}

// TestDecodeLikeEnvconfig: decode fills a Config from a lookup function as
// envconfig.Process fills it from the environment, for every variable.
func TestDecodeLikeEnvconfig(t *testing.T) {
	samples := map[reflect.Kind][]string{
		reflect.String: {"x", "", " $HOME, ${X} "},
		reflect.Int:    {"7", "0x10", "-3"},
		reflect.Bool:   {"true", "0", "F"},
		reflect.Int64:  {"90s", "1h30m", "0"}, // time.Duration
		reflect.Slice:  {"a, b,,c ", "", " ", "x"},
	}
	for round := range 4 {
		cleanEnv(t)
		env := map[string]string{}
		for i, v := range variables {
			vals := samples[v.typ.Kind()]
			if len(vals) == 0 {
				t.Fatalf("%s: no sample values for %s", v.key, v.typ)
			}
			// Round 0: every variable unset (the defaults); then each
			// set or unset in turn, with the sample values.
			if round > 0 && (i+round)%3 != 0 {
				env[v.key] = vals[(i+round)%len(vals)]
				t.Setenv(v.key, env[v.key])
			}
		}
		var want, got Config
		if err := envconfig.Process(Prefix, &want); err != nil {
			t.Fatal(err)
		}
		lookup := func(key string) (string, bool) { v, ok := env[key]; return v, ok }
		if err := decode(&got, lookup); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round %d: decode differs from envconfig.Process (-envconfig +decode):\n%s", round, diff)
		}
	}
}
