package deploy

import (
	"errors"
	"fmt"
	"testing"
)

func TestExitError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantMsg    string // "" for an error without an exit
		wantStatus int
		wantOK     bool
	}{
		{"exit", &ExitError{Status: 3}, "exit status 3", 3, true},
		{"signal", &ExitError{Status: -1, Signal: "KILL"}, "killed by signal KILL", -1, true},
		{"wrapped", fmt.Errorf("host web1: pip: %w", &ExitError{Status: 124}), "host web1: pip: exit status 124", 124, true},
		{"no exit", errors.New("connection lost"), "connection lost", 0, false},
		{"nil", nil, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil && tt.err.Error() != tt.wantMsg {
				t.Errorf("Error(): got %q, want %q", tt.err, tt.wantMsg)
			}
			if status, ok := exitStatus(tt.err); status != tt.wantStatus || ok != tt.wantOK {
				t.Errorf("exitStatus: got %d, %v; want %d, %v", status, ok, tt.wantStatus, tt.wantOK)
			}
		})
	}
}
