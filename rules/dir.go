package rules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/models"
)

// Defaults of DirOptions. A policy is a few kilobytes of YAML; the room
// above that is for long lists (a few hundred thousand BINs or e-mail
// domains fit in 4 MiB).
const (
	DefaultMaxFileBytes = 4 << 20
	DefaultMaxDirBytes  = 32 << 20
	DefaultReadTimeout  = 10 * time.Second
	// DefaultMaxListBytes bounds the list files (lists/*.txt) together:
	// a million card fingerprints of 32 hex digits take 33 MiB.
	DefaultMaxListBytes = 256 << 20
)

// DirOptions bound what reading a policy directory from disk may cost.
// Zero values are the defaults.
type DirOptions struct {
	// MaxFileBytes is the largest policy file read. Default
	// DefaultMaxFileBytes (4 MiB).
	MaxFileBytes int64
	// MaxDirBytes bounds the policy files of the directory together.
	// Default DefaultMaxDirBytes (32 MiB).
	MaxDirBytes int64
	// MaxListBytes bounds the list files (lists/*.txt) together, apart
	// from the policy files: block lists are data, and far larger than
	// rules. Default DefaultMaxListBytes (256 MiB).
	MaxListBytes int64
	// FollowSymlinks allows policy files that are symlinks to files
	// outside the directory. Symlinks that stay inside it, as in a
	// Kubernetes ConfigMap volume (checkout.yaml -> ..data/checkout.yaml,
	// ..data -> ..2026_11_29_10_00_00.123), are followed either way.
	FollowSymlinks bool
	// Timeout bounds one read of the directory: past it the read is given
	// up (a file on a hung network mount). Default DefaultReadTimeout
	// (10s).
	Timeout time.Duration
}

func (o DirOptions) withDefaults() DirOptions {
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxDirBytes <= 0 {
		o.MaxDirBytes = DefaultMaxDirBytes
	}
	if o.MaxListBytes <= 0 {
		o.MaxListBytes = DefaultMaxListBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultReadTimeout
	}
	return o
}

// LoadDir reads the policy directory dir from disk and compiles it. riskd
// (its first load and every reload) and riskctl read a directory through
// it alone, so they agree on what a directory holds.
//
// Only regular files are read: a FIFO, a device or a socket named *.yaml
// is refused without being opened, so it can neither hang the read nor
// feed it without end; a file over opts.MaxFileBytes, or files together
// over opts.MaxDirBytes, are refused unread; a symlink leading outside the
// directory is refused unless opts.FollowSymlinks. List files
// (lists/*.txt) are read under the same rules, bounded together by
// opts.MaxListBytes. Files that are not policy or list files (notes.txt,
// hidden files, other subdirectories) are not looked at.
func LoadDir(dir string, opts DirOptions) (*Policy, error) {
	src, _, err := readWithin(dir, opts.withDefaults())
	if err != nil {
		return nil, err
	}
	return compile(src)
}

// errReadTimeout is returned when reading the directory takes longer than
// its timeout.
var errReadTimeout = errors.New("reading the policy directory timed out")

// readWithin reads dir, waiting at most opts.Timeout. A read that takes
// longer cannot be interrupted (a read(2) on a hung mount waits for the
// mount), so it is left to finish in its goroutine, which holds nothing
// but its own buffers; done is closed when it does. done is nil when the
// read finished in time.
func readWithin(dir string, opts DirOptions) (*source, <-chan struct{}, error) {
	var src *source
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		src, err = readDirFunc(dir, opts)
	}()
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	select {
	case <-done:
		return src, nil, err
	case <-timer.C:
		return nil, done, fmt.Errorf("%s: %w after %v: a file or the directory does not answer (a hung mount?); the read is abandoned", dir, errReadTimeout, opts.Timeout)
	}
}

// readDirFunc is readDir; a test replaces it with a read that hangs.
var readDirFunc = readDir

// readDir reads the policy files of dir under opts' bounds. Problems with
// one file are collected in source.errs; an error is returned only when
// the directory or its features.yaml cannot be read at all.
func readDir(dir string, opts DirOptions) (*source, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, unwrapPathError(err))
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, unwrapPathError(err))
	}
	src := &source{dir: dir}
	r := &dirReader{root: root, dir: dir, opts: opts,
		policy: bound{file: opts.MaxFileBytes, total: opts.MaxDirBytes, what: "a policy file",
			fileFlag: "-rules-max-file-bytes", dir: "the policy files up to this one are larger than the limit of %d bytes for a directory (-rules-max-dir-bytes raises it)"},
		listBound: bound{file: opts.MaxListBytes, total: opts.MaxListBytes, what: "list files",
			fileFlag: "-rules-max-list-bytes", dir: "the list files up to this one are larger than the limit of %d bytes for list files (-rules-max-list-bytes raises it)"}}
	data, skip, err := r.read(FeaturesFile)
	switch {
	case err != nil:
		return nil, err
	case skip:
		return nil, fmt.Errorf("%s: is a directory, not a file", path.Join(dir, FeaturesFile))
	}
	src.features = data
	for _, e := range entries {
		fn := e.Name()
		if !isRuleset(fn) {
			continue
		}
		data, skip, err := r.read(fn)
		switch {
		case err != nil:
			src.errs = append(src.errs, err)
		case !skip:
			src.rulesets = append(src.rulesets, policyFile{name: fn, data: data})
		}
	}
	hasModels := slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == models.File })
	src.models, err = readModels(hasModels, func(name string) ([]byte, error) {
		data, skip, err := r.read(name)
		if err == nil && skip {
			err = fmt.Errorf("%s: is a directory, not a file", path.Join(dir, name))
		}
		return data, err
	})
	if err != nil {
		src.errs = append(src.errs, err)
	}
	r.readLists(src)
	return src, nil
}

// readLists reads the list files, lists/*.txt, into src. The lists
// directory may be a symlink (a ConfigMap item's path puts it behind
// ..data), inside the policy directory unless FollowSymlinks.
func (r *dirReader) readLists(src *source) {
	display := path.Join(r.dir, lists.Dir)
	target := filepath.Join(r.root, lists.Dir)
	li, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		src.errs = append(src.errs, fmt.Errorf("%s: %w", display, unwrapPathError(err)))
		return
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		resolved, err := filepath.EvalSymlinks(target)
		if err != nil {
			src.errs = append(src.errs, fmt.Errorf("%s: a symlink that leads nowhere: %w", display, unwrapPathError(err)))
			return
		}
		if !r.opts.FollowSymlinks && !within(r.root, resolved) {
			src.errs = append(src.errs, fmt.Errorf("%s: a symlink to %s, outside the policy directory: refused (-rules-follow-symlinks allows it)", display, resolved))
			return
		}
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		if !errors.Is(err, syscall.ENOTDIR) {
			src.errs = append(src.errs, fmt.Errorf("%s: %w", display, unwrapPathError(err)))
		}
		return
	}
	for _, e := range entries {
		fn := e.Name()
		if !isListFile(fn) {
			continue
		}
		data, skip, err := r.readBounded(lists.Dir+"/"+fn, &r.listBound)
		switch {
		case err != nil:
			src.errs = append(src.errs, err)
		case !skip:
			src.lists = append(src.lists, policyFile{name: lists.Dir + "/" + fn, data: data})
		}
	}
}

// dirReader reads the files of one directory, keeping count of the bytes
// read so far against the directory's bound.
type dirReader struct {
	root      string // the directory, its own symlinks resolved
	dir       string // as given, to name files in messages
	opts      DirOptions
	policy    bound // policy files
	listBound bound // list files
}

// bound is a byte budget: a file may not exceed file, all of them
// together total; what the flags that raise them are called.
type bound struct {
	file, total   int64
	read          int64
	what          string // "a policy file", "a list file"
	fileFlag, dir string
}

// read returns the contents of the policy file name, or skip when it is a
// directory (as a directory named *.yaml always was).
func (r *dirReader) read(name string) (data []byte, skip bool, err error) {
	return r.readBounded(name, &r.policy)
}

func (r *dirReader) readBounded(name string, b *bound) (data []byte, skip bool, err error) {
	display := path.Join(r.dir, name)
	target := filepath.Join(r.root, name)
	li, err := os.Lstat(target)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", display, unwrapPathError(err))
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		resolved, err := filepath.EvalSymlinks(target)
		if err != nil {
			return nil, false, fmt.Errorf("%s: a symlink that leads nowhere: %w", display, unwrapPathError(err))
		}
		if !r.opts.FollowSymlinks && !within(r.root, resolved) {
			return nil, false, fmt.Errorf("%s: a symlink to %s, outside the policy directory: refused (-rules-follow-symlinks allows it)", display, resolved)
		}
		target = resolved
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", display, unwrapPathError(err))
	}
	if fi.IsDir() {
		return nil, true, nil
	}
	if err := r.check(display, fi, b); err != nil {
		return nil, false, err
	}
	// O_NONBLOCK: should the file have been swapped for a FIFO since it
	// was checked, opening it does not wait for a writer; the check on the
	// open file then refuses it.
	f, err := os.OpenFile(target, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", display, unwrapPathError(err))
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", display, unwrapPathError(err))
	}
	if err := r.check(display, fi, b); err != nil {
		return nil, false, err
	}
	// A file may grow after its size was seen (and some report none): the
	// bound holds on what is read.
	data, err = io.ReadAll(io.LimitReader(f, b.file+1))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", display, unwrapPathError(err))
	}
	if int64(len(data)) > b.file {
		return nil, false, fmt.Errorf("%s: grew past the limit of %d bytes for %s while read (%s raises it)", display, b.file, b.what, b.fileFlag)
	}
	b.read += int64(len(data))
	if b.read > b.total {
		return nil, false, b.dirTooLarge(display)
	}
	return data, false, nil
}

// check refuses what is not a regular file, or is over a bound, before it
// is read.
func (r *dirReader) check(display string, fi fs.FileInfo, b *bound) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s): only regular files are read", display, fileKind(fi.Mode()))
	}
	if fi.Size() > b.file {
		return fmt.Errorf("%s: %d bytes, larger than the limit of %d bytes for %s (%s raises it)", display, fi.Size(), b.file, b.what, b.fileFlag)
	}
	if b.read+fi.Size() > b.total {
		return b.dirTooLarge(display)
	}
	return nil
}

// The messages name the flag that raises a bound: riskd and riskctl
// both call it so.
func (b *bound) dirTooLarge(display string) error {
	return fmt.Errorf("%s: "+b.dir, display, b.total)
}

// within reports whether path p (symlinks resolved) lies inside root.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return m.Type().String()
}
