package main

import (
	"context"
	"math"
	"testing"
	"time"
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

// TestMachineCPUGrowsWithWork: the machine's busy time, which the scale
// table divides by the cores for its floor, grows while this test keeps a
// core busy.
func TestMachineCPUGrowsWithWork(t *testing.T) {
	start := machineCPU()
	if math.IsNaN(start) || start <= 0 {
		t.Fatalf("machineCPU() = %v, want the busy seconds since boot", start)
	}
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for machineCPU()-start < 0.05 {
		if time.Now().After(deadline) {
			t.Fatalf("5s of spinning added %.3f s of busy CPU, want at least 0.05", machineCPU()-start)
		}
		for i := range 1_000_000 {
			x += i
		}
	}
	_ = x
}
