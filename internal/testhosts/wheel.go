package testhosts

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

var (
	// wheelName is a PEP 508 distribution name.
	wheelName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	// wheelVersion is loose on purpose: pip judges the version, we only
	// keep the file name well formed.
	wheelVersion = regexp.MustCompile(`^[A-Za-z0-9.+!]+$`)
	// nameSeparators are collapsed to "_" in wheel file names.
	nameSeparators = regexp.MustCompile(`[-_.]+`)
)

// wheelTime is the modification time of every wheel member, so that the
// same input gives the same bytes.
var wheelTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// BuildWheel writes a pure-Python wheel (py3-none-any) of distribution name
// at version into WheelDir and returns its path. files maps paths inside the
// wheel, such as "pkg/__init__.py", to their content. An existing wheel of
// the same name and version is replaced.
func (e *Env) BuildWheel(name, version string, files map[string]string) (string, error) {
	if !wheelName.MatchString(name) {
		return "", fmt.Errorf("testhosts: build wheel: bad name %q", name)
	}
	if !wheelVersion.MatchString(version) {
		return "", fmt.Errorf("testhosts: build wheel: bad version %q", version)
	}
	data, err := wheel(name, version, files)
	if err != nil {
		return "", fmt.Errorf("testhosts: build wheel %s %s: %w", name, version, err)
	}
	dst := filepath.Join(e.WheelDir, wheelStem(name, version)+"-py3-none-any.whl")
	// Write and rename, so pip never sees half a wheel.
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", fmt.Errorf("testhosts: build wheel: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("testhosts: build wheel: %w", err)
	}
	return dst, nil
}

// wheelStem is "name-version" escaped as wheel file names and dist-info
// folders want it.
func wheelStem(name, version string) string {
	return nameSeparators.ReplaceAllString(name, "_") + "-" + version
}

// wheel returns the bytes of the wheel: files, then METADATA, WHEEL and
// RECORD in the dist-info folder.
func wheel(name, version string, files map[string]string) ([]byte, error) {
	info := wheelStem(name, version) + ".dist-info"
	members := make([]string, 0, len(files))
	for p := range files {
		if !filepath.IsLocal(p) || path.Clean(p) != p || strings.Contains(p, `\`) {
			return nil, fmt.Errorf("file %q: not a clean relative path", p)
		}
		if strings.HasPrefix(p, info+"/") {
			return nil, fmt.Errorf("file %q: inside the dist-info folder", p)
		}
		members = append(members, p)
	}
	sort.Strings(members)
	all := make(map[string]string, len(files)+2)
	for p, c := range files {
		all[p] = c
	}
	metadata, wheelFile := info+"/METADATA", info+"/WHEEL"
	all[metadata] = fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)
	all[wheelFile] = "Wheel-Version: 1.0\nGenerator: pushdeploy-testhosts\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	members = append(members, metadata, wheelFile)

	var record bytes.Buffer
	w := csv.NewWriter(&record)
	for _, p := range members {
		sum := sha256.Sum256([]byte(all[p]))
		hash := "sha256=" + base64.RawURLEncoding.EncodeToString(sum[:])
		if err := w.Write([]string{p, hash, fmt.Sprint(len(all[p]))}); err != nil {
			return nil, fmt.Errorf("RECORD: %w", err)
		}
	}
	recordFile := info + "/RECORD"
	if err := w.Write([]string{recordFile, "", ""}); err != nil {
		return nil, fmt.Errorf("RECORD: %w", err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("RECORD: %w", err)
	}
	all[recordFile] = record.String()
	members = append(members, recordFile)
	return zipFiles(members, all)
}

// zipFiles zips the members, in order, with content from all.
func zipFiles(members []string, all map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range members {
		hdr := &zip.FileHeader{Name: p, Method: zip.Deflate, Modified: wheelTime}
		hdr.SetMode(0o644)
		f, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", p, err)
		}
		if _, err := f.Write([]byte(all[p])); err != nil {
			return nil, fmt.Errorf("zip %s: %w", p, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	return buf.Bytes(), nil
}
