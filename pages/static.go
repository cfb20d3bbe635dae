package pages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// staticFS is a read-only, flat, in-memory file system of the generated
// static assets.
type staticFS map[string][]byte

// maxImage bounds each image taken from the templates directory: a logo,
// not a photo gallery.
const maxImage = 1 << 20

// imageExts are the image files a templates directory may add to the static
// files.
var imageExts = map[string]bool{".png": true, ".svg": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true, ".ico": true}

// addImages adds the image files directly in dir ("" = none), so that a
// logo can be served by Gatehouse itself.
func (s staticFS) addImages(dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read templates dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !imageExts[strings.ToLower(path.Ext(name))] {
			continue
		}
		if !fs.ValidPath(name) || strings.ContainsAny(name, "\\?#% \"'<>") {
			return fmt.Errorf("templates dir: image name %q is not usable in a URL", name)
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("stat image %s: %w", name, err)
		}
		if info.Size() > maxImage {
			return fmt.Errorf("templates dir: image %s is %d bytes, more than %d", name, info.Size(), maxImage)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("read image %s: %w", name, err)
		}
		s[name] = b
	}
	return nil
}

// version is a short content hash of the named file, used to bust caches.
func (s staticFS) version(name string) string {
	sum := sha256.Sum256(s[name])
	return hex.EncodeToString(sum[:6])
}

// Open implements fs.FS.
func (s staticFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &staticDir{fsys: s}, nil
	}
	b, ok := s[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &staticFile{info: fileInfo{name: name, size: int64(len(b))}, Reader: bytes.NewReader(b)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (s staticFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	b, ok := s[name]
	if !ok {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

func (s staticFS) entries() []fs.DirEntry {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, len(names))
	for i, n := range names {
		out[i] = fs.FileInfoToDirEntry(fileInfo{name: n, size: int64(len(s[n]))})
	}
	return out
}

// staticFile is an open file; it can seek, as http.ServeContent needs.
type staticFile struct {
	info fileInfo
	*bytes.Reader
}

func (f *staticFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *staticFile) Close() error               { return nil }

// staticDir is the open root directory.
type staticDir struct {
	fsys    staticFS
	entries []fs.DirEntry
	read    bool
}

func (d *staticDir) Stat() (fs.FileInfo, error) { return fileInfo{name: ".", dir: true}, nil }
func (d *staticDir) Close() error               { return nil }
func (d *staticDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}

// ReadDir implements fs.ReadDirFile.
func (d *staticDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.entries, d.read = d.fsys.entries(), true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}

// fileInfo describes a file or the root. ModTime is zero, so HTTP servers
// send no Last-Modified; the URLs carry a content hash instead.
type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }
