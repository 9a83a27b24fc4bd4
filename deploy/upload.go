package deploy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// uploadMarker is the last entry of every push-mode upload: a file at the
// top of the release holding the number of paths the upload creates.
// sealUpload writes it only once the Archiver has written the whole commit,
// and unpack.sh refuses an upload without it, or with another number of
// paths than it says, before anything else happens to the release. A tar
// stream that stops between two entries looks complete to tar (GNU tar
// exits 0), so only this proves the release whole.
const uploadMarker = ".pushdeploy-upload"

// errUploadStopped ends an Archiver that is still writing when the host
// has stopped reading (its command failed, or it ended).
var errUploadStopped = errors.New("the host stopped reading the upload")

// sealedArchive writes the commit's tar stream, as the Archiver makes it,
// to w, checked entry by entry and sealed with the marker (sealUpload). It
// returns the Archiver's own error when it failed, and waits for it in
// every case.
func sealedArchive(ctx context.Context, a Archiver, commit string, w io.Writer) error {
	pr, pw := io.Pipe()
	archived := make(chan error, 1)
	go func() {
		err := a.Archive(ctx, commit, pw)
		pw.CloseWithError(err)
		archived <- err
	}()
	err := sealUpload(w, pr)
	pr.CloseWithError(errUploadStopped)
	if aerr := <-archived; aerr != nil && !errors.Is(aerr, errUploadStopped) {
		return aerr
	}
	return err
}

// sealUpload copies the tar stream r to w entry by entry and ends it with
// uploadMarker. An entry that is not a plain file, folder or symlink, that
// has a name that is not a clean relative path, or that is named like the
// marker is refused: the host's count of what it unpacked could not be
// trusted otherwise.
func sealUpload(w io.Writer, r io.Reader) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	paths := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata (git archive's holds the commit id), no file
		}
		name, err := uploadPath(hdr)
		if err != nil {
			return err
		}
		for p := name; p != "." && !paths[p]; p = path.Dir(p) {
			paths[p] = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
	}
	count := strconv.Itoa(len(paths)) + "\n"
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: uploadMarker, Mode: 0o600, Size: int64(len(count)), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if _, err := io.WriteString(tw, count); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// uploadPath checks one entry of an upload and returns its path.
func uploadPath(hdr *tar.Header) (string, error) {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	switch {
	case name == "" || name == "." || name != path.Clean(name) || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../"):
		return "", fmt.Errorf("the archive has an entry named %q, which is not a clean relative path", hdr.Name)
	case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeSymlink:
		return "", fmt.Errorf("the archive's entry %s is of tar type %q: a release holds files, folders and symlinks only", name, hdr.Typeflag)
	case name == uploadMarker:
		return "", fmt.Errorf("the repository has %s at its top level, which pushdeploy writes in each release: remove it from the repository (git rm -r --cached %s) and deploy again", name, name)
	}
	return name, nil
}
