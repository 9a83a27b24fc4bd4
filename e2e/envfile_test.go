package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// literalRestart is a restart command full of what a dotenv reader might
// expand or cut: $HOME, ${X}, $(…), backslashes, # inside quotes. It
// records its own command line (the argv of the shell that runs it) and
// what $HOME and ${X} are in that shell, on the host.
const literalRestart = `cat /proc/$$/cmdline >"$HOME/restart.cmdline"; printf '%s|%s\n' "$HOME" "${X-unset}" >"$HOME/restart.vars"; ` +
	`: '${X}' "$(printf %s 'a\b')" '# not a comment' \\ "x#y" 'C:\dir\'`

// TestEndToEndEnvValuesReachTheHostAsWritten: DEPLOY_RESTART_CMD reaches
// the host's shell byte for byte, whether it comes from the real
// environment, the default deploy.env (unquoted) or --env-file (in double
// quotes, with escapes), and $HOME and ${X} are the host shell's to
// expand: the host user's home, and unset (X is set on the deployer only).
func TestEndToEndEnvValuesReachTheHostAsWritten(t *testing.T) {
	e := newE2E(t, 1)
	h := e.env.Hosts[0]
	e.vars["X"] = "expanded-on-the-deployer"
	doubleQuoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(literalRestart) + `"`

	check := func(how string, run func() result) {
		t.Helper()
		for _, f := range []string{"restart.cmdline", "restart.vars"} {
			if err := os.Remove(h.Path(f)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		e.commit("1.0", map[string]string{"how.txt": how})
		if r := run(); r.code != 0 {
			t.Fatalf("%s: deploy: exit %d\n%s", how, r.code, r.stderr)
		}
		cmdline, err := os.ReadFile(h.Path("restart.cmdline"))
		if err != nil {
			t.Fatalf("%s: the restart command did not run: %v", how, err)
		}
		argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(argv) != 3 || argv[1] != "-c" || argv[2] != literalRestart {
			t.Errorf("%s: the host's shell ran %q,\nwant sh -c %q", how, argv, literalRestart)
		}
		vars, _ := os.ReadFile(h.Path("restart.vars"))
		if want := h.Home + "|unset\n"; string(vars) != want {
			t.Errorf("%s: $HOME|${X} on the host: %q, want %q", how, vars, want)
		}
	}

	check("the environment", func() result {
		e.vars["DEPLOY_RESTART_CMD"] = literalRestart
		defer delete(e.vars, "DEPLOY_RESTART_CMD")
		return e.pushdeploy("deploy")
	})
	check("deploy.env", func() result {
		dir := t.TempDir()
		writeEnvFile(t, filepath.Join(dir, "deploy.env"), "DEPLOY_RESTART_CMD="+literalRestart+"\n")
		return e.pushdeployIn(dir, "deploy")
	})
	check("--env-file", func() result {
		file := filepath.Join(t.TempDir(), "prod.env")
		writeEnvFile(t, file, "# quoted, with escapes\nexport DEPLOY_RESTART_CMD="+doubleQuoted+" # a comment\n")
		return e.pushdeploy("deploy", "--env-file", file)
	})
}

func writeEnvFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
