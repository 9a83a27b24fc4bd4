package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}
	dirty := append(rev[:1:1], debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		name, set string
		bi        *debug.BuildInfo
		want      string
	}{
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "pushdeploy v1.4.0 "},
		{"checkout build", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev}, "pushdeploy dev 0123456789ab "},
		{"modified checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: dirty}, "pushdeploy dev 0123456789ab+dirty "},
		{"ldflags win", "v2.0.0", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: rev}, "pushdeploy v2.0.0 0123456789ab "},
		{"no build info", "", nil, "pushdeploy dev "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatVersion(tc.set, tc.bi); !strings.HasPrefix(got, tc.want) {
				t.Errorf("formatVersion = %q, want prefix %q", got, tc.want)
			}
		})
	}
}
