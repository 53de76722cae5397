package rules

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/policyfile"
)

// List is a named list of values for membership tests: `x in lists.name`.
// It is one of three kinds, by how it is declared under lists:
//
//	high_risk: [NG, RU]                       inline: a constant array in each expression
//	blocked_cards: {file: lists/blocked.txt}  a file of the policy directory: a set
//	blocked_api: {mutable: true}              changed through the admin API: a set read per event
//
// Inline lists are what rules always had (any(), filter() and the like
// scan them; expr turns `x in` a constant array of strings into a map).
// File and mutable lists are sets of strings (lists.Set), whatever their
// size: `in`, `not in` and len() work on them, `in` in one lookup.
type List struct {
	Name   string
	Values []any // inline: string or float64
	// File is the list file, "lists/blocked_cards.txt", and Set its
	// values.
	File string
	Set  *lists.Set
	// Mutable lists are filled per event from riskd's list registry.
	Mutable bool
	// Version names a file list's content in the decisions it takes
	// part in: the first 12 hex digits of the file's SHA-256.
	Version string
	// Decl is where the list is declared: "features.yaml:12".
	Decl string
	// Broken: the declaration has errors (reported there); expressions
	// read it as empty so they are still checked, and the policy does not
	// load.
	Broken bool
}

// listFiles are the list files of a policy directory, each parsed on
// first use.
type listFiles struct {
	dir    string
	data   map[string][]byte
	parsed map[string]*lists.File
	broken map[string]bool // declared but not list files: reported there
	names  []string
}

func newListFiles(dir string, files []policyFile) *listFiles {
	lf := &listFiles{dir: dir, data: map[string][]byte{}, parsed: map[string]*lists.File{}, broken: map[string]bool{}}
	for _, f := range files {
		lf.data[f.name] = f.data
		lf.names = append(lf.names, f.name)
	}
	return lf
}

// get returns the parsed list file name; ok is false when there is no
// such file, err says why it is not a list file.
func (lf *listFiles) get(name string) (f *lists.File, ok bool, err error) {
	if f, ok := lf.parsed[name]; ok {
		return f, true, nil
	}
	data, ok := lf.data[name]
	if !ok {
		return nil, false, nil
	}
	if f, err = lists.ParseFile(data); err != nil {
		lf.broken[name] = true
		return nil, true, err
	}
	lf.parsed[name] = f
	return f, true, nil
}

// warnings are the list files' own problems (duplicates, empty lines)
// and the files no list declares.
func (lf *listFiles) warnings() []string {
	var out []string
	for _, name := range lf.names {
		f, used := lf.parsed[name]
		if lf.broken[name] {
			continue
		}
		if !used {
			out = append(out, fmt.Sprintf("%s: no list declares this file (declare it under lists:, e.g. %s: {file: %s})",
				path.Join(lf.dir, name), strings.TrimSuffix(path.Base(name), ".txt"), name))
			continue
		}
		for _, w := range f.Warnings {
			out = append(out, path.Join(lf.dir, name)+": "+w)
		}
	}
	return out
}

// ListFile describes a list file the policy read.
type ListFile struct {
	Path    string // within the policy directory: lists/blocked_cards.txt
	Values  int
	Bytes   int
	Version string
}

func (lf *listFiles) described() []ListFile {
	var out []ListFile
	for _, name := range lf.names {
		if f, ok := lf.parsed[name]; ok {
			out = append(out, ListFile{Path: name, Values: f.Values.Len(), Bytes: f.Bytes, Version: f.Version})
		}
	}
	return out
}

// parseLists reads a lists: mapping (of features.yaml or of a ruleset).
// outer holds the lists already visible (features.yaml's, for a
// ruleset), which may not be declared again.
//
// A list whose declaration is broken is in the result as Broken, so that
// expressions reading it are not reported again as reading an unknown
// list.
func parseLists(es *policyfile.Errors, n *yaml.Node, files *listFiles, outer map[string]*List, file string) map[string]*List {
	out := map[string]*List{}
	if n.Kind != yaml.MappingNode {
		es.At(n, "lists must be a mapping of list names to lists of values")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if !idRE.MatchString(name) {
			es.At(k, "list name %s must be lower case letters, digits and _", policyfile.Quote(name))
			continue
		}
		if _, dup := out[name]; dup {
			es.At(k, "duplicate list %s", policyfile.Quote(name))
			continue
		}
		if o, ok := outer[name]; ok {
			es.At(k, "list %s is declared in %s already: every ruleset reads it as lists.%s", policyfile.Quote(name), o.Decl, name)
			continue
		}
		l := &List{Name: name, Decl: file + ":" + strconv.Itoa(k.Line)}
		out[name] = l
		switch v.Kind {
		case yaml.SequenceNode:
			parseInline(es, l, v)
		case yaml.MappingNode:
			l.Broken = !parseSource(es, l, v, files)
		default:
			es.At(v, "list %s must be a list of values, e.g. [NG, RU], a file, {file: lists/%s.txt}, or {mutable: true}", policyfile.Quote(name), name)
			l.Broken = true
		}
	}
	return out
}

func parseInline(es *policyfile.Errors, l *List, v *yaml.Node) {
	for _, item := range v.Content {
		switch {
		case item.Kind != yaml.ScalarNode || item.Tag == "!!null":
			es.At(item, "list %s: items must be strings or numbers", policyfile.Quote(l.Name))
		case (item.Tag == "!!int" || item.Tag == "!!float") && leadingZero(item.Value):
			// A code such as an MCC (0742) or a postcode (02139): as a
			// number it loses the zero and equals no string.
			es.At(item, "list %s: %s is read as the number %s, its leading zero lost: quote it (%q) if it is a code", policyfile.Quote(l.Name), item.Value, strings.TrimLeft(strings.TrimLeft(item.Value, "+-"), "0"), item.Value)
		case item.Tag == "!!int" || item.Tag == "!!float":
			f, err := strconv.ParseFloat(item.Value, 64)
			if err != nil {
				es.At(item, "list %s: %s is not a number", policyfile.Quote(l.Name), policyfile.Quote(item.Value))
				continue
			}
			l.Values = append(l.Values, f)
		default:
			l.Values = append(l.Values, item.Value)
		}
	}
}

// leadingZero reports whether a YAML number is written with a leading
// zero that is not its only digit before the point: 0742, not 0 or 0.5.
func leadingZero(v string) bool {
	v = strings.TrimLeft(v, "+-")
	return len(v) > 1 && v[0] == '0' && v[1] >= '0' && v[1] <= '9'
}

// parseSource reads {file: …} or {mutable: true}.
func parseSource(es *policyfile.Errors, l *List, v *yaml.Node, files *listFiles) bool {
	what := "list " + policyfile.Quote(l.Name)
	before := es.Len()
	m := policyfile.Mapping(es, v, what, "file", "mutable")
	if m == nil || es.Len() > before {
		return false
	}
	f, hasFile := m["file"]
	mu, hasMutable := m["mutable"]
	switch {
	case hasFile && hasMutable:
		es.At(mu.Key, "%s: file or mutable, not both: a file list changes with the policy directory, a mutable one through the admin API", what)
		return false
	case hasMutable:
		if mu.Value.Kind != yaml.ScalarNode || mu.Value.Tag != "!!bool" || mu.Value.Value != "true" {
			es.At(mu.Value, "%s: mutable must be true (or leave it out and give values or a file)", what)
			return false
		}
		l.Mutable = true
		return true
	case !hasFile:
		es.At(v, "%s needs file: lists/%s.txt (a file of the policy directory) or mutable: true", what, l.Name)
		return false
	}
	name, ok := policyfile.String(es, f.Value, what+": file")
	if !ok {
		return false
	}
	if path.Clean(name) != name || path.Dir(name) != lists.Dir || !isListFile(path.Base(name)) {
		es.At(f.Value, "%s: file %s must be a .txt file in the policy directory's %s/ directory, e.g. %s/%s.txt", what, policyfile.Quote(name), lists.Dir, lists.Dir, l.Name)
		return false
	}
	lf, ok, err := files.get(name)
	if err != nil {
		es.At(f.Value, "%s: file %s: %v", what, policyfile.Quote(name), err)
		return false
	}
	if !ok {
		msg := fmt.Sprintf("%s: no list file %s in the policy directory", what, policyfile.Quote(name))
		if s := policyfile.Suggest(name, files.names); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		es.At(f.Value, "%s", msg)
		return false
	}
	l.File, l.Set, l.Version = name, lf.Values, lf.Version
	return true
}

// mutableNames are the names of the mutable lists of ls, sorted.
func mutableNames(ls ...map[string]*List) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ls {
		for name, l := range m {
			if l.Mutable && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}
