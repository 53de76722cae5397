package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/policyfile"
)

// FeaturesFile is the name of the feature definitions in a policy directory.
const FeaturesFile = "features.yaml"

var idRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
var rulesetNameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

// Load reads and compiles a policy directory held in fsys: features.yaml
// and every other *.yaml or *.yml file at its top level as a ruleset. dir
// only names the files in messages. All problems of all files are
// returned together, each as file:line:col: message.
//
// Load trusts fsys (the example policy embedded in the binary, a test's
// map); a directory on disk is read with LoadDir, which bounds what it
// reads.
func Load(fsys fs.FS, dir string) (*Policy, error) {
	src, err := readFS(fsys, dir)
	if err != nil {
		return nil, err
	}
	return compile(src)
}

// source is what a policy directory holds, read but not yet parsed.
type source struct {
	dir      string
	features []byte
	rulesets []policyFile // in name order
	models   modelSource
	lists    []policyFile // lists/*.txt, in name order
	errs     []error      // files that could not be read
}

type policyFile struct {
	name string // within the directory
	data []byte
}

// isRuleset reports whether a directory entry's name is a ruleset file.
// Hidden files (editors' temporaries, Kubernetes' ..data) are not.
func isRuleset(name string) bool {
	return name != FeaturesFile && name != models.File && !strings.HasPrefix(name, ".") &&
		(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

// isListFile reports whether an entry of lists/ is a list file.
func isListFile(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".txt")
}

func readFS(fsys fs.FS, dir string) (*source, error) {
	data, err := fs.ReadFile(fsys, FeaturesFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(dir, FeaturesFile), unwrapPathError(err))
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, unwrapPathError(err))
	}
	src := &source{dir: dir, features: data}
	for _, e := range entries {
		fn := e.Name()
		if e.IsDir() || !isRuleset(fn) {
			continue
		}
		data, err := fs.ReadFile(fsys, fn)
		if err != nil {
			src.errs = append(src.errs, fmt.Errorf("%s: %w", path.Join(dir, fn), unwrapPathError(err)))
			continue
		}
		src.rulesets = append(src.rulesets, policyFile{name: fn, data: data})
	}
	if src.models, err = readFSModels(fsys, dir); err != nil {
		src.errs = append(src.errs, err)
	}
	listEntries, err := fs.ReadDir(fsys, lists.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		src.errs = append(src.errs, fmt.Errorf("%s: %w", path.Join(dir, lists.Dir), unwrapPathError(err)))
	}
	for _, e := range listEntries {
		fn := lists.Dir + "/" + e.Name()
		if e.IsDir() || !isListFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, fn)
		if err != nil {
			src.errs = append(src.errs, fmt.Errorf("%s: %w", path.Join(dir, fn), unwrapPathError(err)))
			continue
		}
		src.lists = append(src.lists, policyFile{name: fn, data: data})
	}
	return src, nil
}

// digest hashes the names and contents of the files, so a reload of a
// directory that holds what is being served changes nothing.
func (src *source) digest() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", FeaturesFile, len(src.features))
	h.Write(src.features)
	for _, f := range append(src.rulesets[:len(src.rulesets):len(src.rulesets)], src.lists...) {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	src.models.hash(func(name string, data []byte) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	})
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// compile parses and compiles what was read.
func compile(src *source) (*Policy, error) {
	dir := src.dir
	name := func(f string) string { return path.Join(dir, f) }
	// A broken features.yaml does not stop the rulesets from being checked:
	// every problem of the directory is reported in one go.
	set, listsNode, featErr := features.ParseWithLists(name(FeaturesFile), src.features)
	p := &Policy{Dir: dir, Features: set, LoadedAt: time.Now(), byType: map[string]*Ruleset{}, digest: src.digest()}
	var errs []error
	if featErr != nil {
		errs = append(errs, featErr)
	}
	errs = append(errs, src.errs...)
	// Models are checked with the rest of the directory, so a broken one
	// fails the load (and a reload keeps the previous policy).
	ms, err := src.models.load(dir, set)
	if err != nil {
		errs = append(errs, err)
	}
	p.Models = ms
	fes := &policyfile.Errors{File: name(FeaturesFile)}
	fwarns := &policyfile.Errors{File: name(FeaturesFile)}
	files := newListFiles(dir, src.lists)
	p.Lists = map[string]*List{}
	if listsNode != nil {
		p.Lists = parseLists(fes, listsNode, files, nil, FeaturesFile)
	}
	var reads []pathRead
	p.Filters = compileFilters(set, p.Lists, fes, fwarns, &reads)
	if err := fes.Err(); err != nil {
		errs = append(errs, err)
	}
	p.Warnings = append(p.Warnings, set.Warnings...)
	var all, parsed []*parsedRuleset
	for _, f := range src.rulesets {
		es := &policyfile.Errors{File: name(f.name)}
		warns := &policyfile.Errors{File: name(f.name)}
		rs := parseRuleset(es, warns, set, ms, p.Lists, files, f.name, f.data)
		if rs == nil {
			errs = append(errs, es.Err())
			continue
		}
		rs.File = name(f.name)
		all = append(all, rs)
		if es.Len() == 0 {
			parsed = append(parsed, rs)
		}
	}
	// Challengers take their champion's event types in link; the rules are
	// type-checked for those types once they are known.
	linkErrs := link(parsed)
	// With features.yaml broken, a type its broken features name would
	// look unnamed.
	if featErr == nil {
		if err := checkEventTypes(set, all, name(FeaturesFile), &p.Warnings); err != nil {
			errs = append(errs, err)
		}
	}
	// A model's derived inputs are typed for the event types of the
	// rulesets that read it, known once they are linked.
	types := map[string][]string{}
	for _, rs := range all {
		for name := range rs.c.modelsRead(rs.Ruleset) {
			for _, t := range rs.EventTypes {
				if !slices.Contains(types[name], t) {
					types[name] = append(types[name], t)
				}
			}
		}
	}
	// A model no ruleset reads (one being trained) is typed for the
	// event types the policy scores.
	var scored []string
	for _, rs := range parsed {
		for _, t := range rs.EventTypes {
			if !slices.Contains(scored, t) {
				scored = append(scored, t)
			}
		}
	}
	for _, m := range ms.All() {
		if types[m.Name] == nil {
			types[m.Name] = scored
		}
	}
	for _, ts := range types {
		slices.Sort(ts)
	}
	mwarns := &policyfile.Errors{File: name(models.File)}
	p.ModelInputs, err = compileModelInputs(ms, name(models.File), set, p.Lists, types, mwarns)
	if err != nil {
		errs = append(errs, err)
	}
	p.Warnings = append(p.Warnings, mwarns.Messages()...)
	inputs := map[string]*ModelInputs{}
	for _, mi := range p.ModelInputs {
		inputs[mi.Model.Name] = mi
	}
	for _, rs := range all {
		rs.c.inputs = inputs
		rs.c.reads = &reads
		rs.c.finish(rs.Ruleset, rs.EventTypes)
		rs.checkBase(rs.c.warns)
	}
	warnLonelyReads(set, reads)
	p.Warnings = append(p.Warnings, fwarns.Messages()...)
	for _, rs := range all {
		rs.linkLists(rs.c.lists)
		if err := rs.es.Err(); err != nil {
			errs = append(errs, err)
		}
		p.Warnings = append(p.Warnings, rs.c.warns.Messages()...)
	}
	errs = append(errs, linkErrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.Warnings = append(p.Warnings, files.warnings()...)
	p.ListFiles = files.described()
	for _, f := range src.lists {
		p.ListBytes += len(f.data)
	}
	local := []map[string]*List{p.Lists}
	for _, rs := range parsed {
		local = append(local, rs.Lists)
	}
	p.MutableLists = mutableNames(local...)
	for _, rs := range parsed {
		p.Rulesets = append(p.Rulesets, rs.Ruleset)
	}
	if len(p.Rulesets) == 0 {
		return nil, fmt.Errorf("%s: no ruleset files (*.yaml besides %s)", dir, FeaturesFile)
	}
	sort.Slice(p.Rulesets, func(i, j int) bool { return p.Rulesets[i].Name < p.Rulesets[j].Name })
	for _, rs := range p.Rulesets {
		if rs.ShadowOf == "" {
			for _, t := range rs.EventTypes {
				p.byType[t] = rs
			}
		}
	}
	return p, nil
}

// link checks what spans files (parsed is in file name order, as Load
// reads the directory): unique names, one live ruleset per event
// type, and every challenger's champion. It attaches each challenger to its
// champion, which lends it its event types.
func link(parsed []*parsedRuleset) []error {
	byName := map[string]*parsedRuleset{}
	typeOwner := map[string]string{}
	var names []string
	ess := make([]*policyfile.Errors, len(parsed))
	for i, rs := range parsed {
		es := &policyfile.Errors{File: rs.File}
		ess[i] = es
		if other, dup := byName[rs.Name]; dup {
			es.AtPos(rs.nameLine, rs.nameCol, "ruleset name %s is already used by %s", policyfile.Quote(rs.Name), other.File)
			continue
		}
		byName[rs.Name] = rs
		names = append(names, rs.Name)
		if rs.ShadowOf != "" {
			continue
		}
		for _, t := range rs.EventTypes {
			if owner, taken := typeOwner[t]; taken {
				es.AtPos(rs.typesLine, rs.typesCol, "event type %s is already scored by %s; one live ruleset per event type (a challenger says shadow_of)", policyfile.Quote(t), owner)
				continue
			}
			typeOwner[t] = rs.File
		}
	}
	traffic := map[*Ruleset]int{}
	for i, rs := range parsed {
		if rs.ShadowOf == "" {
			continue
		}
		es := ess[i]
		champ, ok := byName[rs.ShadowOf]
		switch {
		case rs.ShadowOf == rs.Name:
			es.At(rs.shadowOf, "shadow_of names this ruleset itself; a challenger shadows another ruleset")
			continue
		case !ok:
			msg := fmt.Sprintf("shadow_of: no ruleset named %s in this directory", policyfile.Quote(rs.ShadowOf))
			if s := policyfile.Suggest(rs.ShadowOf, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			es.At(rs.shadowOf, "%s", msg)
			continue
		case champ.ShadowOf != "":
			es.At(rs.shadowOf, "shadow_of: %s is itself a challenger (of %s); challenge the live ruleset %s", policyfile.Quote(rs.ShadowOf), policyfile.Quote(champ.ShadowOf), policyfile.Quote(champ.ShadowOf))
			continue
		}
		if rs.EventTypes == nil {
			rs.EventTypes = champ.EventTypes
		} else if !sameSet(rs.EventTypes, champ.EventTypes) {
			es.AtPos(rs.typesLine, rs.typesCol, "event_types %v differ from those of %s %v; a challenger scores what its champion scores (leave event_types out)", rs.EventTypes, champ.Name, champ.EventTypes)
			continue
		}
		if rs.TrafficPPM > 0 {
			traffic[champ.Ruleset] += rs.TrafficPPM
			if traffic[champ.Ruleset] > 1e6 {
				es.At(rs.traffic, "traffic: the challengers of %s take more than 100%% of its traffic together", champ.Name)
				continue
			}
		}
		rs.Champion = champ.Ruleset
		champ.Challengers = append(champ.Challengers, rs.Ruleset)
	}
	var errs []error
	for _, es := range ess {
		if err := es.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, rs := range parsed {
		sort.Slice(rs.Challengers, func(i, j int) bool { return rs.Challengers[i].Name < rs.Challengers[j].Name })
	}
	return errs
}

// checkEventTypes refuses an event type, in a live ruleset or a feature,
// that nothing else in the policy names (the schema, the features, the
// other rulesets) and that is close to one that is named: `chekout` would
// leave every checkout unscored, or the feature empty. A ruleset's event
// type named nowhere else with no close match is a warning naming the
// schema's types no ruleset scores. Ruleset errors go to their files'
// lists; the features' are returned.
func checkEventTypes(set *features.Set, all []*parsedRuleset, featuresFile string, warnings *[]string) error {
	// names counts, for each type, the places that name it; a place
	// naming a type twice counts once.
	names := map[string]int{}
	var order []string
	mention := func(types []string) {
		seen := map[string]bool{}
		for _, t := range types {
			if seen[t] {
				continue
			}
			seen[t] = true
			if names[t] == 0 {
				order = append(order, t)
			}
			names[t]++
		}
	}
	schemaTypes := set.Schema.Types()
	mention(schemaTypes)
	for _, f := range set.Features {
		mention(f.EventTypes)
	}
	var live []*parsedRuleset
	scored := map[string]bool{}
	for _, rs := range all {
		if rs.ShadowOf == "" {
			live = append(live, rs)
			mention(rs.EventTypes)
			for _, t := range rs.EventTypes {
				scored[t] = true
			}
		}
	}
	inSchema := map[string]bool{}
	for _, st := range schemaTypes {
		inSchema[st] = true
	}
	// lonely returns, for a type t named only once (by the place asking),
	// a close type that is better established: one the schema or two
	// places name, or, for a feature, one a ruleset scores. Two lone
	// spellings do not accuse each other. A feature's type that only
	// features name is as lonely however many of them name it: a typo
	// copied from one feature to the next records nothing either; it is
	// suggested a close type the schema names, or a ruleset scores and
	// as many places name.
	lonely := func(t string, feature bool) (sug string, alone bool) {
		if names[t] > 1 && (!feature || inSchema[t] || scored[t]) {
			return "", false
		}
		var others []string
		for _, o := range order {
			if o != t && (names[o] > 1 && names[o] > names[t] || inSchema[o] || feature && scored[o] && names[o] >= names[t]) {
				others = append(others, o)
			}
		}
		return policyfile.Suggest(t, others), true
	}
	for _, rs := range live {
		for _, t := range rs.EventTypes {
			sug, alone := lonely(t, false)
			switch {
			case !alone:
			case sug != "":
				rs.es.AtPos(rs.typesLine, rs.typesCol, "event type %s is named by no event_fields declaration, feature or other ruleset (did you mean %q?): events of type %s are answered pass, unscored",
					policyfile.Quote(t), sug, policyfile.Quote(sug))
			case len(schemaTypes) > 0:
				var unscored []string
				for _, st := range schemaTypes {
					if !scored[st] {
						unscored = append(unscored, st)
					}
				}
				if len(unscored) > 0 {
					w := &policyfile.Errors{File: rs.File}
					w.AtPos(rs.typesLine, rs.typesCol, "event type %s is named by no event_fields declaration, feature or other ruleset, and no ruleset scores the event types event_fields declares: %s (they are answered pass, unscored)",
						policyfile.Quote(t), strings.Join(unscored, ", "))
					*warnings = append(*warnings, w.Messages()...)
				}
			}
		}
	}
	fes := &policyfile.Errors{File: featuresFile}
	for _, f := range set.Features {
		for _, t := range f.EventTypes {
			sug, alone := lonely(t, true)
			switch {
			case !alone || sug == "":
			case names[t] > 1:
				fes.At(f.TypesPos.Node(), "feature %q: event type %s is named by no event_fields declaration or ruleset, only by features (did you mean %q?): the feature records no event of type %s", f.Name, policyfile.Quote(t), sug, policyfile.Quote(sug))
			default:
				fes.At(f.TypesPos.Node(), "feature %q: event type %s is named by no event_fields declaration, ruleset or other feature (did you mean %q?): the feature records no event", f.Name, policyfile.Quote(t), sug)
			}
		}
	}
	// A type only event_fields names, close to one that rulesets or
	// features use: the declarations check no event of the type meant.
	reported := map[string]bool{}
	for _, f := range set.Schema.Fields {
		for _, t := range f.EventTypes {
			if names[t] > 1 || reported[t] {
				continue
			}
			var others []string
			for _, o := range order {
				if o != t && (names[o] > 1 || scored[o]) {
					others = append(others, o)
				}
			}
			if sug := policyfile.Suggest(t, others); sug != "" {
				reported[t] = true
				fes.AtPos(f.Line, f.Col, "event_fields: field %s is declared for event type %s, which no ruleset or feature names (did you mean %q?): events of type %s are not checked for it", policyfile.Quote(f.Name), policyfile.Quote(t), sug, policyfile.Quote(sug))
			}
		}
	}
	return fes.Err()
}

func sameSet(a, b []string) bool {
	in := map[string]bool{}
	for _, s := range a {
		in[s] = true
	}
	for _, s := range b {
		if !in[s] {
			return false
		}
		delete(in, s)
	}
	return len(in) == 0
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parsedRuleset carries positions needed for cross-file checks.
type parsedRuleset struct {
	*Ruleset
	es                  *policyfile.Errors
	c                   *compiler
	typesLine, typesCol int
	nameLine, nameCol   int
	shadowOf            *yaml.Node // the shadow_of value, for messages about it
	traffic             *yaml.Node
}

// parseChallenger reads shadow_of, traffic and split_key. Whether the
// champion exists is checked once every file is read (linkChallengers).
func parseChallenger(es *policyfile.Errors, out *parsedRuleset, m map[string]policyfile.Field) {
	rs := out.Ruleset
	if f, ok := m["shadow_of"]; ok {
		if s, ok := policyfile.String(es, f.Value, "shadow_of"); ok {
			rs.ShadowOf, out.shadowOf = s, f.Value
		}
	}
	tr, hasTraffic := m["traffic"]
	sk, hasKey := m["split_key"]
	if hasTraffic {
		out.traffic = tr.Value
		if rs.ShadowOf == "" {
			es.At(tr.Key, "traffic needs shadow_of: a traffic share makes a challenger live for some keys, and a challenger names the ruleset it challenges")
		}
		if ppm, err := parseTraffic(tr.Value); err != nil {
			es.At(tr.Value, "traffic: %v", err)
		} else {
			rs.TrafficPPM = ppm
		}
		if !hasKey {
			es.At(tr.Key, "traffic needs split_key: the event field whose value decides, stably, which side an event is on (e.g. split_key: account_id)")
		}
	}
	if hasKey {
		if s, ok := policyfile.String(es, sk.Value, "split_key"); ok {
			if !fieldPathRE.MatchString(s) {
				es.At(sk.Value, "split_key %s must be an event field name, e.g. account_id or billing.country", policyfile.Quote(s))
			}
			rs.SplitKey = features.NewPath(s)
		}
		if !hasTraffic {
			es.At(sk.Key, "split_key without traffic: say which share of keys this challenger decides, e.g. traffic: 5%%")
		}
	}
}

var fieldPathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// parseTraffic reads a share such as "5%" or "0.25%" into parts per
// million, the resolution of the split.
func parseTraffic(n *yaml.Node) (int, error) {
	s := strings.TrimSpace(n.Value)
	if n.Kind != yaml.ScalarNode || !strings.HasSuffix(s, "%") {
		return 0, fmt.Errorf("%s must be a percentage, e.g. 5%%", policyfile.Quote(n.Value))
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("%s must be a percentage, e.g. 5%%", policyfile.Quote(n.Value))
	}
	if f <= 0 || f > 100 {
		return 0, fmt.Errorf("%s is out of range: more than 0%% and at most 100%%", s)
	}
	ppm := math.Round(f * 1e4)
	if math.Abs(ppm-f*1e4) > 1e-6 {
		return 0, fmt.Errorf("%s is finer than the split's resolution of 0.0001%%", s)
	}
	return int(ppm), nil
}

// parseRuleset reads a ruleset file and parses its expressions; they are
// compiled by the compiler's finish once the ruleset's event types are
// known. It returns nil for a file that is not a mapping at all.
func parseRuleset(es, warns *policyfile.Errors, set *features.Set, ms *models.Set, policyLists map[string]*List, files *listFiles, file string, data []byte) *parsedRuleset {
	root, err := policyfile.Parse(es.File, data)
	if err != nil {
		es.Add(err)
		return nil
	}
	sum := sha256.Sum256(data)
	rs := &Ruleset{Hash: hex.EncodeToString(sum[:6]), Lists: map[string]*List{}}
	out := &parsedRuleset{Ruleset: rs, es: es}
	m := policyfile.Mapping(es, root, "ruleset", "!name", "version", "description", "event_types",
		"!thresholds", "base", "lists", "!rules", "on_store_error", "shadow_of", "traffic", "split_key")
	if m == nil {
		return nil
	}
	if f, ok := m["name"]; ok {
		out.nameLine, out.nameCol = f.Value.Line, f.Value.Column
		if s, ok := policyfile.String(es, f.Value, "name"); ok {
			if !rulesetNameRE.MatchString(s) {
				es.At(f.Value, "ruleset name %s must be lower case letters, digits, _, - and .", policyfile.Quote(s))
			}
			rs.Name = s
		}
	}
	if f, ok := m["version"]; ok {
		if f.Value.Kind != yaml.ScalarNode {
			es.At(f.Value, "version must be text, e.g. \"2026-11-21.1\"")
		}
		rs.Version = f.Value.Value
	}
	parseChallenger(es, out, m)
	if f, ok := m["on_store_error"]; ok {
		switch f.Value.Value {
		case "fail_open":
		case "fail_closed":
			rs.FailClosed = true
		default:
			es.At(f.Value, "on_store_error must be fail_open or fail_closed, got %s", policyfile.Quote(f.Value.Value))
		}
	}
	if f, ok := m["event_types"]; ok {
		out.typesLine, out.typesCol = f.Value.Line, f.Value.Column
		rs.EventTypes, _ = policyfile.Strings(es, f.Value, "event_types")
	} else if rs.ShadowOf == "" {
		es.At(root, "ruleset is missing required key \"event_types\" (only a challenger, with shadow_of, takes its champion's)")
	}
	if f, ok := m["thresholds"]; ok {
		parseThresholds(es, f.Value, rs)
	}
	if f, ok := m["base"]; ok {
		parseBase(es, out, f.Value, ms)
	}
	if f, ok := m["lists"]; ok {
		rs.Lists = parseLists(es, f.Value, files, policyLists, file)
	}
	visible := maps.Clone(policyLists)
	maps.Copy(visible, rs.Lists)
	c := &compiler{es: es, warns: warns, features: set, models: ms, lists: visible}
	out.c = c
	if f, ok := m["rules"]; ok {
		if f.Value.Kind != yaml.SequenceNode || len(f.Value.Content) == 0 {
			es.At(f.Value, "rules must be a non-empty list of rules")
		} else {
			seen := map[string]int{}
			for _, n := range f.Value.Content {
				r := parseRule(es, c, n)
				if r == nil {
					continue
				}
				if line, dup := seen[r.ID]; dup {
					es.AtPos(r.Line, n.Column, "duplicate rule id %s (first at line %d)", policyfile.Quote(r.ID), line)
					continue
				}
				seen[r.ID] = r.Line
				rs.Rules = append(rs.Rules, r)
			}
		}
	}
	return out
}

// parseThresholds reads thresholds: step_up, and block, review or both.
// The bands go up in order of severity: step_up <= review < block. Equal
// step_up and review leave step_up no scores, as equal step_up and block
// always did; review at or above block would leave review none while the
// file says it reviews, so that is an error. Review without block sends
// the top band to an analyst and blocks only by a rule's action.
func parseThresholds(es *policyfile.Errors, n *yaml.Node, rs *Ruleset) {
	th := policyfile.Mapping(es, n, "thresholds", "!step_up", "review", "block")
	if th == nil {
		return
	}
	rs.StepUp, rs.Review, rs.Block = 0, NoThreshold, NoThreshold
	good := true
	val := func(key string, dst *int64) (*yaml.Node, bool) {
		f, ok := th[key]
		if !ok {
			return nil, false
		}
		v, ok := policyfile.Int(es, f.Value, "thresholds."+key)
		if !ok {
			good = false
			return f.Value, false
		}
		*dst = v
		return f.Value, true
	}
	suNode, hasSU := val("step_up", &rs.StepUp)
	rvNode, hasRV := val("review", &rs.Review)
	blNode, hasBL := val("block", &rs.Block)
	// At 0 or below, every event no rule fires on (score 0) would be
	// stepped up, reviewed or blocked: a typo for 50, not a policy.
	for _, t := range []struct {
		name string
		v    int64
		ok   bool
		n    *yaml.Node
	}{{"step_up", rs.StepUp, hasSU, suNode}, {"review", rs.Review, hasRV, rvNode}, {"block", rs.Block, hasBL, blNode}} {
		if t.ok && t.v <= 0 {
			es.At(t.n, "thresholds.%s %d is reached by every event no rule fires on (score 0): a threshold must be above 0 (a rule's action steps up or blocks on its own)", t.name, t.v)
			good = false
		}
	}
	if _, ok := th["block"]; !ok {
		if _, ok := th["review"]; !ok {
			es.At(n, "thresholds need block, review or both beside step_up (e.g. {step_up: 50, review: 70, block: 90})")
			return
		}
	}
	if !good || !hasSU {
		return
	}
	switch {
	case hasRV && rs.StepUp > rs.Review:
		es.At(suNode, "thresholds out of order: step_up (%d) must not be above review (%d)", rs.StepUp, rs.Review)
	case hasRV && hasBL && rs.Review >= rs.Block:
		es.At(rvNode, "thresholds out of order: review (%d) must be below block (%d), or no score would be reviewed", rs.Review, rs.Block)
	case hasBL && rs.StepUp > rs.Block:
		es.At(suNode, "thresholds out of order: step_up (%d) must not be above block (%d)", rs.StepUp, rs.Block)
	}
}

func parseRule(es *policyfile.Errors, c *compiler, n *yaml.Node) *Rule {
	m := policyfile.Mapping(es, n, "rule", "!id", "!when", "score", "action", "reason", "description")
	if m == nil {
		return nil
	}
	r := &Rule{Line: n.Line}
	before := es.Len()
	if f, ok := m["id"]; ok {
		if s, ok := policyfile.String(es, f.Value, "id"); ok {
			if !idRE.MatchString(s) {
				es.At(f.Value, "rule id %s must be lower case letters, digits and _", policyfile.Quote(s))
			}
			r.ID = s
		}
	}
	what := "rule"
	if r.ID != "" {
		what = fmt.Sprintf("rule %s", policyfile.Cut(r.ID))
	}
	if f, ok := m["when"]; ok {
		if s, ok := policyfile.String(es, f.Value, what+": when"); ok {
			r.when = c.compile(f.Value, s, 0, what+": when", expr.AsBool())
		}
	}
	score, hasScore := m["score"]
	if hasScore {
		v := score.Value
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
			r.Score, _ = policyfile.Int(es, v, what+": score")
		case v.Kind == yaml.ScalarNode && v.Tag == "!!float":
			es.At(v, "%s: score %s must be a whole number (scores are whole points so the reasons add up exactly)", what, v.Value)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Value != "":
			r.graded = c.compile(v, v.Value, 0, what+": score", expr.AsFloat64())
		default:
			es.At(v, "%s: score must be a whole number or an expression in quotes", what)
		}
	}
	action, hasAction := m["action"]
	if hasAction {
		switch action.Value.Value {
		case "block":
			r.Action = Block
		case "step_up":
			r.Action = StepUp
		case "review":
			r.Action = Review
		default:
			es.At(action.Value, "%s: action must be block, review or step_up, got %s", what, policyfile.Quote(action.Value.Value))
		}
	}
	if !hasScore && !hasAction {
		es.At(n, "%s does nothing: give it a score, an action, or both", what)
	}
	reason := r.ID
	var reasonNode *yaml.Node
	if f, ok := m["reason"]; ok {
		reasonNode = f.Value
		if s, ok := policyfile.String(es, f.Value, what+": reason"); ok {
			reason = s
		}
	}
	r.Reason = compileTemplate(es, c, reasonNode, reason, what)
	if es.Len() > before {
		return nil
	}
	return r
}

func compileTemplate(es *policyfile.Errors, c *compiler, node *yaml.Node, s, what string) Template {
	if node == nil {
		return Template{parts: []templatePart{{text: s}}}
	}
	lits, exprs, offsets, err := splitTemplate(s)
	if err != nil {
		es.At(node, "%s: reason: %v", what, err)
		return Template{}
	}
	if len(exprs) > MaxReasonHoles {
		es.At(node, "%s: reason: %d {{…}}, more than the %d a reason may have", what, len(exprs), MaxReasonHoles)
		return Template{}
	}
	var t Template
	for i, lit := range lits {
		if lit != "" {
			t.parts = append(t.parts, templatePart{text: lit})
		}
		if i < len(exprs) {
			prog := c.compile(node, exprs[i], offsets[i], what+": reason", expr.AsAny())
			t.parts = append(t.parts, templatePart{prog: prog})
		}
	}
	return t
}

// warnLonelyReads warns of an event field that one expression reads, that
// no schema declares and that is close to a field two places read (a
// feature's key, of or field, a where, a ruleset's rules) by a typo's
// few letters: without a schema, event.amout is nil on every event. Two
// lone spellings do not accuse each other.
func warnLonelyReads(set *features.Set, reads []pathRead) {
	count := map[string]int{}
	for _, r := range reads {
		count[r.path]++
	}
	for _, f := range set.Features {
		for _, p := range append([]features.Path{f.Field, f.Of}, f.Key...) {
			if p.Name != "" {
				count[p.Name]++
			}
		}
	}
	var known []string
	for p, n := range count {
		if n > 1 {
			known = append(known, p)
		}
	}
	sort.Strings(known)
	for _, r := range reads {
		if count[r.path] > 1 {
			continue
		}
		if sug := policyfile.Suggest(r.path, known); sug != "" && policyfile.Typo(r.path, sug) {
			r.warn(sug)
		}
	}
}
