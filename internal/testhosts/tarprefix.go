package testhosts

import (
	"archive/tar"
	"bytes"
	"testing"
)

// TarPrefix is the start of a tar archive: one small file for each name,
// and no end-of-archive blocks after them. It is what a tar stream cut
// between two entries looks like (an upload whose writer failed), and tar
// takes it as a whole archive.
func TarPrefix(t testing.TB, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range names {
		content := "content of " + name + "\n"
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil { // pads the last file; Close would end the archive
		t.Fatal(err)
	}
	return b.Bytes()
}
