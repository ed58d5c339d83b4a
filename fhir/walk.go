package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// walker checks one body token by token against the R4 definitions. It
// keeps the FHIRPath of the current element in path and builds strings
// from it only when it reports an issue.
type walker struct {
	dec    *json.Decoder
	src    []byte
	defs   *defs
	opts   Options
	path   []byte
	depth  int
	issues []Issue
	// failed is set if the decoder fails, which checkSyntax makes
	// impossible short of a bug; every loop stops on it.
	failed bool

	res     *resFrame      // innermost resource being walked
	bundles []*bundleFrame // Bundles being walked, innermost last
}

func newWalker(src []byte, d *defs, opts Options) *walker {
	dec := json.NewDecoder(bytes.NewReader(src))
	// Numbers stay the exact text of the body: 7.10 is never 7.1.
	dec.UseNumber()
	return &walker{dec: dec, src: src, defs: d, opts: opts, path: make([]byte, 0, 128)}
}

// root walks the top-level resource and fills in r.
func (w *walker) root(r *Result) {
	if tok, ok := w.next(); !ok || tok != json.Delim('{') {
		w.issue(SeverityError, CodeStructure, "body must be a JSON object holding one FHIR resource")
		return
	}
	f := w.resource(nil, -1)
	if f == nil {
		return
	}
	r.ResourceType, r.ID = f.typ.name, f.id
	if f.bundle != nil {
		r.BundleType, r.Entries = f.bundle.typ, f.bundle.count
		r.TooManyEntries = f.bundle.tooMany
	}
	if w.failed {
		w.issue(SeverityFatal, CodeStructure, "body could not be read to the end")
	}
}

func (w *walker) next() (json.Token, bool) {
	if w.failed {
		return nil, false
	}
	tok, err := w.dec.Token()
	if err != nil {
		w.failed = true
		return nil, false
	}
	return tok, true
}

func (w *walker) more() bool { return !w.failed && w.dec.More() }

// skipFrom skips the rest of a value whose first token is tok.
func (w *walker) skipFrom(tok json.Token) {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return
	}
	for depth := 1; depth > 0; {
		t, ok := w.next()
		if !ok {
			return
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// skip skips the next value.
func (w *walker) skip() {
	if tok, ok := w.next(); ok {
		w.skipFrom(tok)
	}
}

func (w *walker) pushName(name string) int {
	l := len(w.path)
	if l > 0 {
		w.path = append(w.path, '.')
	}
	w.path = append(w.path, name...)
	return l
}

func (w *walker) pushIndex(i int) int {
	l := len(w.path)
	w.path = append(w.path, '[')
	w.path = strconv.AppendInt(w.path, int64(i), 10)
	w.path = append(w.path, ']')
	return l
}

func (w *walker) pop(l int) { w.path = w.path[:l] }

func (w *walker) expr() string { return string(w.path) }

func (w *walker) issue(sev Severity, code, diag string) {
	w.issueAt(w.expr(), sev, code, diag)
}

func (w *walker) issueAt(expr string, sev Severity, code, diag string) {
	w.issues = append(w.issues, Issue{Severity: sev, Code: code, Expression: expr, Diagnostics: diag})
}

// objState is what one JSON object has shown so far.
type objState struct {
	keys    []string
	index   map[string]struct{} // keys as a set, once there are many
	choices [][2]string         // choice base, variant
	arrays  []primArray
}

// primArray records a repeating primitive (or its "_name" twin) for the
// alignment check: given and _given must have equal length and no index
// may be null in both.
type primArray struct {
	name  string // without "_"
	ext   bool
	n     int
	nulls []int
}

// seenIndexAt is the number of keys after which objState indexes them in
// a map, so that an object with very many (unknown) keys costs linear
// time, not quadratic.
const seenIndexAt = 32

func (s *objState) seen(key string) bool {
	if s.index != nil {
		if _, dup := s.index[key]; dup {
			return true
		}
		s.index[key] = struct{}{}
		s.keys = append(s.keys, key)
		return false
	}
	for _, k := range s.keys {
		if k == key {
			return true
		}
	}
	s.keys = append(s.keys, key)
	if len(s.keys) == seenIndexAt {
		s.index = make(map[string]struct{}, 2*seenIndexAt)
		for _, k := range s.keys {
			s.index[k] = struct{}{}
		}
	}
	return false
}

// object walks the members of an object of type t whose '{' has been read.
func (w *walker) object(t *typeDef) { w.objectAfter(t, "", "") }

func (w *walker) member(t *typeDef, key string, st *objState) {
	if st.seen(key) {
		l := w.pushName(key)
		w.issue(SeverityError, CodeStructure, "duplicate property "+strconv.Quote(key))
		w.pop(l)
		w.skip()
		return
	}
	if key == "resourceType" && t.resource {
		// Read ahead by resource(); a non-string value was reported there.
		w.skip()
		return
	}
	e := t.elems[key]
	if e == nil {
		w.unknown(t, key)
		w.skip()
		return
	}
	if e.base != "" {
		w.choice(e, key, st)
	}
	l := w.pushName(key)
	w.enter(key)
	w.element(t, e, st)
	w.leave()
	w.pop(l)
}

func (w *walker) choice(e *elemDef, key string, st *objState) {
	variant := strings.TrimPrefix(key, "_")
	for _, c := range st.choices {
		if c[0] == e.base && c[1] != variant {
			l := w.pushName(key)
			w.issue(SeverityError, CodeStructure, fmt.Sprintf(
				"only one type of %s[x] may be present, found %s and %s", e.base, c[1], variant))
			w.pop(l)
			return
		}
	}
	st.choices = append(st.choices, [2]string{e.base, variant})
}

func (w *walker) unknown(t *typeDef, key string) {
	l := w.pushName(key)
	defer w.pop(l)
	diag := "unknown element" + hint(t, key)
	if w.opts.Lenient {
		w.issue(SeverityWarning, CodeStructure, diag+"; kept as sent (lenient mode)")
		return
	}
	w.issue(SeverityError, CodeStructure, diag)
}

// stu3Renames maps STU3 element names that R4 renamed, for the hint.
var stu3Renames = map[string]string{
	"context":      "encounter",
	"assertedDate": "recordedDate",
}

func hint(t *typeDef, key string) string {
	if r, ok := stu3Renames[key]; ok && t.elems[r] != nil {
		return fmt.Sprintf(" (did you send STU3? R4 uses '%s')", r)
	}
	for name := range t.elems {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf(" (names are case-sensitive: did you mean '%s'?)", name)
		}
	}
	return ""
}

// element walks the value of member e of an object of type owner.
func (w *walker) element(owner *typeDef, e *elemDef, st *objState) {
	tok, ok := w.next()
	if !ok {
		return
	}
	if tok == nil {
		w.issue(SeverityError, CodeStructure, "null is only allowed inside arrays of primitives")
		return
	}
	if !e.repeated {
		if tok == json.Delim('[') {
			w.issue(SeverityError, CodeStructure, "element does not repeat: expected a single value, not an array")
			w.skipFrom(tok)
			return
		}
		w.single(owner, e, tok)
		return
	}
	if tok != json.Delim('[') {
		w.issue(SeverityError, CodeStructure, "element repeats: expected an array")
		w.skipFrom(tok)
		return
	}
	w.array(owner, e, st)
}

func (w *walker) array(owner *typeDef, e *elemDef, st *objState) {
	if !w.deeper() {
		return
	}
	defer func() { w.depth-- }()
	pa := primArray{name: strings.TrimPrefix(e.name, "_"), ext: e.ext}
	n := 0
	for ; w.more(); n++ {
		if w.bundleEntryLimit(owner, e, n) {
			continue
		}
		tok, _ := w.next()
		l := w.pushIndex(n)
		w.item(owner, e, tok, n, &pa)
		w.pop(l)
	}
	w.next() // ']'
	if n == 0 {
		w.issue(SeverityError, CodeStructure, "arrays must not be empty")
	}
	if e.typ.primitive {
		pa.n = n
		st.arrays = append(st.arrays, pa)
	}
}

func (w *walker) item(owner *typeDef, e *elemDef, tok json.Token, i int, pa *primArray) {
	switch {
	case tok == nil && e.typ.primitive:
		pa.nulls = append(pa.nulls, i)
	case tok == nil:
		w.issue(SeverityError, CodeStructure, "null is only allowed inside arrays of primitives")
	default:
		w.enterItem(i)
		w.single(owner, e, tok)
	}
}

// deeper counts one more level of nesting and reports whether it is
// within Options.MaxDepth; if not, it skips the value.
func (w *walker) deeper() bool {
	w.depth++
	if w.depth <= w.opts.MaxDepth {
		return true
	}
	w.depth--
	w.issue(SeverityError, CodeStructure, fmt.Sprintf("nested deeper than %d levels", w.opts.MaxDepth))
	w.skipFrom(json.Delim('{'))
	return false
}

// single walks one value of element e.
func (w *walker) single(owner *typeDef, e *elemDef, tok json.Token) {
	if e.typ.primitive && !e.ext {
		w.primitive(owner, e, tok)
		return
	}
	if tok != json.Delim('{') {
		w.issue(SeverityError, CodeStructure, "expected a JSON object")
		w.skipFrom(tok)
		return
	}
	if e.typ.anyResource {
		w.nestedResource()
		return
	}
	if !w.deeper() {
		return
	}
	w.object(e.typ)
	w.depth--
}

func (w *walker) closeObject(t *typeDef, st *objState) {
	if len(st.keys) == 0 {
		w.issue(SeverityError, CodeInvariant, "objects must not be empty (ele-1)")
		return
	}
	for _, e := range t.required {
		if !st.has(e) {
			name := e.name
			if e.base != "" {
				name = e.base + "[x]"
			}
			l := w.pushName(name)
			w.issue(SeverityError, CodeRequired, "missing required element "+name)
			w.pop(l)
		}
	}
	w.checkAlignment(st)
}

func (s *objState) has(e *elemDef) bool {
	if e.base != "" {
		for _, c := range s.choices {
			if c[0] == e.base {
				return true
			}
		}
		return false
	}
	// A primitive may be present as its extension alone, such as a
	// data-absent-reason in _status.
	return s.contains(e.name) || s.contains("_"+e.name)
}

func (s *objState) contains(key string) bool {
	if s.index != nil {
		_, ok := s.index[key]
		return ok
	}
	for _, k := range s.keys {
		if k == key {
			return true
		}
	}
	return false
}

func (w *walker) checkAlignment(st *objState) {
	for i, a := range st.arrays {
		var twin *primArray
		for j := range st.arrays {
			if j != i && st.arrays[j].name == a.name {
				twin = &st.arrays[j]
			}
		}
		if a.ext && twin != nil {
			continue // reported from the value side
		}
		w.alignPair(a, twin)
	}
}

func (w *walker) alignPair(a primArray, twin *primArray) {
	name := a.name
	if a.ext {
		name = "_" + name
	}
	l := w.pushName(name)
	defer w.pop(l)
	if twin == nil {
		if len(a.nulls) > 0 {
			w.issue(SeverityError, CodeStructure, fmt.Sprintf(
				"null at index %d without a matching entry in its twin array", a.nulls[0]))
		}
		return
	}
	if twin.n != a.n {
		w.issue(SeverityError, CodeStructure, fmt.Sprintf(
			"%s has %d entries but _%s has %d: the arrays must stay aligned", a.name, a.n, a.name, twin.n))
		return
	}
	for _, i := range a.nulls {
		for _, j := range twin.nulls {
			if i == j {
				w.issue(SeverityError, CodeStructure, fmt.Sprintf(
					"index %d is null in both %s and _%s", i, a.name, a.name))
			}
		}
	}
}
