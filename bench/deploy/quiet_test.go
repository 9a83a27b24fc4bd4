package main

import (
	"context"
	"testing"
)

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"50%", 0.5, true},
		{"0.25", 0.25, true},
		{"100%", 1, true},
		{"0", 0, true},
		{"150%", 0, false},
		{"-1%", 0, false},
		{"half", 0, false},
	}
	for _, tt := range tests {
		got, err := parsePercent(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parsePercent(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestBusyShare(t *testing.T) {
	share, err := busyShare(context.Background(), quietSample/4)
	if err != nil {
		t.Fatal(err)
	}
	if share < 0 || share > 1 {
		t.Errorf("busyShare = %v, want a share from 0 to 1", share)
	}
}
