package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
)

// modelSource is what a policy directory holds for models: models.yaml
// and the model files it names, read with the rest of the directory (and
// within its bounds) so that a reload reads, hashes and accepts or
// rejects them with everything else.
type modelSource struct {
	list  []byte               // models.yaml; nil when the directory has none
	files map[string]modelFile // by name in the directory
}

type modelFile struct {
	data []byte
	err  error // why it could not be read
}

// readModels reads models.yaml and its model files with read, which
// returns a file's bytes or why not; has reports whether the directory
// holds models.yaml at all.
func readModels(has bool, read func(name string) ([]byte, error)) (modelSource, error) {
	if !has {
		return modelSource{}, nil
	}
	list, err := read(models.File)
	if err != nil {
		return modelSource{}, err
	}
	src := modelSource{list: list, files: map[string]modelFile{}}
	for _, name := range models.Files(list) {
		if _, done := src.files[name]; !done {
			data, err := read(name)
			src.files[name] = modelFile{data, err}
		}
	}
	return src, nil
}

// readFSModels is readModels on an fs.FS (Load).
func readFSModels(fsys fs.FS, dir string) (modelSource, error) {
	_, err := fs.Stat(fsys, models.File)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return modelSource{}, fmt.Errorf("%s: %w", path.Join(dir, models.File), unwrapPathError(err))
	}
	return readModels(err == nil, func(name string) ([]byte, error) {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(dir, name), unwrapPathError(err))
		}
		return data, nil
	})
}

// load checks models.yaml and every model against the features: a model
// that cannot be read or does not fit its inputs fails the whole policy.
func (m modelSource) load(dir string, set *features.Set) (*models.Set, error) {
	if m.list == nil {
		return nil, nil
	}
	return models.Load(path.Join(dir, models.File), m.list, func(name string) ([]byte, error) {
		f, ok := m.files[name]
		if !ok { // models.Files lists every plain name Load reads
			return nil, fmt.Errorf("not read with the directory")
		}
		return f.data, f.err
	}, set)
}

// hash adds models.yaml and the model files to a directory's digest.
func (m modelSource) hash(write func(name string, data []byte)) {
	if m.list == nil {
		return
	}
	write(models.File, m.list)
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := m.files[n]
		if f.err != nil {
			// Unreadable: the load fails, and the next read is a change.
			write(n, []byte(f.err.Error()))
			continue
		}
		write(n, f.data)
	}
}
