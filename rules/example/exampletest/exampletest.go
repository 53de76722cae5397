// Package exampletest builds variants of the example policy for tests and
// benchmarks. It imports testing/fstest, so only test code imports it:
// the example policy riskd serves stays free of testing packages.
package exampletest

import (
	"io/fs"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/riskd/riskd/rules/example"
)

// WithChallengers returns the example policy plus n shadow challengers of
// checkout, each a copy of its rules (checkout_next0, checkout_next1…):
// the policy the benchmarks measure a challenger's cost on.
func WithChallengers(n int) fs.FS {
	fsys := fstest.MapFS{}
	fs.WalkDir(example.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := example.FS.ReadFile(name)
			fsys[name] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	checkout := string(fsys["checkout.yaml"].Data)
	for i := range n {
		c := strings.Replace(checkout, "name: checkout", "name: checkout_next"+strconv.Itoa(i)+"\nshadow_of: checkout", 1)
		c = strings.Replace(c, "event_types: [checkout]\n", "", 1)
		fsys["next"+strconv.Itoa(i)+".yaml"] = &fstest.MapFile{Data: []byte(c)}
	}
	return fsys
}
