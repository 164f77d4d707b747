// Command lifecycle_tar is the independent oracle behind golden/trees.json: it writes a layer
// with Go's archive/tar following lifecycle's rules (ancestor dir entries, filepath.Walk order,
// tar.FileInfoHeader, mtime 1980-01-01T00:00:01Z, empty uname/gname, build-user uid/gid,
// symlinks stored, sockets/fifos/devices skipped) and prints the sha256 of the tar.
//
// Usage: go run lifecycle_tar.go DIR PREFIX UID GID
//
// Not used by the tests (they need no Go): run golden/regenerate.sh after changing
// golden/make-trees.sh, and review the diff of golden/trees.json.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: lifecycle_tar DIR PREFIX UID GID")
		os.Exit(2)
	}
	dir, prefix := filepath.Clean(os.Args[1]), "/"+strings.Trim(os.Args[2], "/")
	uid, _ := strconv.Atoi(os.Args[3])
	gid, _ := strconv.Atoi(os.Args[4])
	mtime := time.Unix(315532801, 0)
	hash := sha256.New()
	tw := tar.NewWriter(hash)
	check := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	parts := strings.Split(strings.TrimPrefix(prefix, "/"), "/")
	for i := 1; i < len(parts); i++ {
		check(tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: "/" + strings.Join(parts[:i], "/"), Mode: 0o755, ModTime: mtime,
		}))
	}
	check(filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&(os.ModeSocket|os.ModeNamedPipe|os.ModeDevice) != 0 {
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr.Name = prefix
		if rel != "." {
			hdr.Name = prefix + "/" + rel
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if hdr.Linkname, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr.ModTime, hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = mtime, "", "", uid, gid
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	}))
	check(tw.Close())
	fmt.Printf("sha256:%x\n", hash.Sum(nil))
}
