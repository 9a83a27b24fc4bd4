package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDataDir(t *testing.T) {
	base := t.TempDir()
	for _, tt := range []struct {
		name string
		mode os.FileMode // 0: missing
		warn bool
	}{
		{"private", 0o700, false},
		{"group can enter", 0o750, true},
		{"world can enter", 0o755, true},
		{"missing", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.mode != 0 {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			checkDataDir(dir, slog.New(slog.NewTextHandler(&logs, nil)))
			if got := strings.Contains(logs.String(), "chmod -R go= "+dir); got != tt.warn {
				t.Errorf("warning %v, want %v: %q", got, tt.warn, logs.String())
			}
			fi, err := os.Stat(dir)
			switch {
			case tt.mode == 0 && err == nil:
				t.Errorf("a missing folder was created")
			case tt.mode != 0 && (err != nil || fi.Mode().Perm() != tt.mode):
				t.Errorf("the folder's mode changed: %v %v", fi, err) // warned about, never changed
			}
		})
	}
}
