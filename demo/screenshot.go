package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// chromium is Debian's Chromium (.ci/install installs it).
const chromium = "/usr/bin/chromium"

// canScreenshot says, before anything starts, why screenshots into dir
// cannot be taken.
func canScreenshot(dir string) error {
	if _, err := os.Stat(chromium); err != nil {
		return fmt.Errorf("--screenshots needs Chromium (apt-get install chromium): %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--screenshots: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--screenshots: %s is not a folder", dir)
	}
	return nil
}

// screenshot saves the status page's index and the page of deployment id
// into dir, as headless Chromium shows them 1280 pixels wide.
func screenshot(ctx context.Context, tmp, dir, url, id string) error {
	shots := []struct{ file, url, size string }{
		{"status-page.png", url + "/", "1280,680"},
		{"status-page-deployment.png", url + "/deployments/" + id, "1280,1400"},
	}
	for _, s := range shots {
		png, err := shoot(ctx, tmp, s.url, s.size)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, s.file)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", p, s.url)
	}
	return nil
}

// shoot takes one picture of url with a fresh browser profile that reaches
// nothing but 127.0.0.1.
func shoot(ctx context.Context, tmp, url, size string) ([]byte, error) {
	profile, err := os.MkdirTemp(tmp, "chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	out := filepath.Join(profile, "shot.png")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=direct://",
		"--user-data-dir="+profile, "--hide-scrollbars", "--window-size="+size,
		// The page asks the hosts for their releases once shown: give the
		// answer time to arrive before the picture is taken.
		"--virtual-time-budget=10000",
		"--screenshot="+out, url)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chromium %s: %w\n%s", url, err, log.Bytes())
	}
	png, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		return nil, fmt.Errorf("chromium %s: no picture (%v)\n%s", url, err, log.Bytes())
	}
	return png, nil
}
