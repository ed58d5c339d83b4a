package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// resFrame is one resource being walked: the top-level resource, a Bundle
// entry's resource, a contained resource or a Parameters resource.
type resFrame struct {
	typ  *typeDef
	expr string // FHIRPath of the resource
	// contained is the index in the container's contained array, or -1
	// if the resource is not contained.
	contained int
	// scope is where local references (#id) resolve: shared by a
	// resource and the resources it contains.
	scope *scope
	// rel holds the element names from the resource down to the current
	// element, without indices; lastIndex is the index of the array item
	// being walked. Together they let fixed places (meta.versionId,
	// entry.fullUrl) be recorded without a second pass.
	rel       []string
	lastIndex int

	id, versionID         string
	lastUpdated, security bool
	bundle                *bundleFrame // non-nil for a Bundle
}

// scope collects the contained resources and local references of one
// container resource, checked when the container ends.
type scope struct {
	contained []containedRes
	byID      map[string]bool // ids of contained, for linear-time checks
	refs      []localRef
}

type containedRes struct {
	id, expr string
	index    int // in the contained array
}

// localRef is a reference to "#id" found in a scope, or a urn: reference
// found in a Bundle.
type localRef struct {
	target string // without "#"
	expr   string
	from   int // contained index of the referring resource, -1 for the container
	// check is false for #id in canonical, uri and url elements: they
	// count as references for dom-3 but need not resolve.
	check bool
}

// relIs reports whether the current element, relative to the resource,
// is exactly names.
func (f *resFrame) relIs(names ...string) bool {
	if len(f.rel) != len(names) {
		return false
	}
	for i, n := range names {
		if f.rel[i] != n {
			return false
		}
	}
	return true
}

// resource walks a resource whose '{' has been read. parent is the
// enclosing resource (nil at the top); contained is the index in the
// parent's contained array or -1. It returns nil if the resource type is
// missing or unknown, after skipping the object.
func (w *walker) resource(parent *resFrame, contained int) *resFrame {
	start := w.dec.InputOffset()
	typ, done, pending, ok := w.resourceType(start)
	if !ok {
		return nil
	}
	if len(w.path) == 0 {
		w.path = append(w.path, typ.name...)
	}
	f := &resFrame{typ: typ, expr: w.expr(), contained: contained, scope: &scope{}}
	if contained >= 0 {
		f.scope = parent.scope
	}
	if typ.name == "Bundle" {
		f.bundle = &bundleFrame{expr: f.expr}
		w.bundles = append(w.bundles, f.bundle)
	}
	prev := w.res
	w.res = f
	if w.deeper() {
		w.objectAfter(typ, done, pending)
		w.depth--
	}
	w.res = prev
	if f.bundle != nil {
		w.bundles = w.bundles[:len(w.bundles)-1]
		w.closeBundle(f)
	}
	if contained >= 0 {
		w.closeContained(f)
	} else {
		w.closeScope(f)
	}
	return f
}

// objectAfter is object for a resource whose first member was read while
// looking for resourceType: done is a member already consumed whole,
// pending a key whose value is still to be read.
func (w *walker) objectAfter(t *typeDef, done, pending string) {
	var st objState
	if done != "" {
		st.keys = append(st.keys, done)
	}
	if pending != "" {
		w.member(t, pending, &st)
	}
	for w.more() {
		tok, _ := w.next()
		key, _ := tok.(string)
		w.member(t, key, &st)
	}
	w.next() // '}'
	w.closeObject(t, &st)
}

// resourceType finds the type of the resource whose body starts at
// offset start. resourceType is usually the first member; if not, it is
// looked up ahead in the raw bytes, since the elements before it cannot be
// checked without knowing the type.
func (w *walker) resourceType(start int64) (t *typeDef, done, pending string, ok bool) {
	tok, _ := w.next()
	if tok == json.Delim('}') {
		w.issue(SeverityError, CodeRequired, "missing required property resourceType")
		return nil, "", "", false
	}
	key, _ := tok.(string)
	var rt json.Token
	found := false
	if key == "resourceType" {
		rt, _ = w.next()
		found, done = true, key
	} else {
		rt, found = lookupResourceType(w.src[start:])
		pending = key
	}
	name, isString := rt.(string)
	switch {
	case !found:
		w.issue(SeverityError, CodeRequired, "missing required property resourceType")
	case !isString:
		w.issue(SeverityError, CodeStructure, "resourceType must be a JSON string")
	case w.defs.resources[name] == nil:
		w.issue(SeverityError, CodeInvalid, fmt.Sprintf("resourceType %q is not an R4 resource type", name))
	default:
		return w.defs.resources[name], done, pending, true
	}
	if key == "resourceType" {
		w.skipFrom(rt)
	}
	w.skipMembers(pending != "")
	return nil, "", "", false
}

// skipMembers skips the rest of an object, starting with the value of a
// key already read if pendingValue.
func (w *walker) skipMembers(pendingValue bool) {
	if pendingValue {
		w.skip()
	}
	for w.more() {
		w.next()
		w.skip()
	}
	w.next() // '}'
}

// lookupResourceType returns the value of the resourceType member of the
// object whose members start at the beginning of body.
func lookupResourceType(body []byte) (json.Token, bool) {
	d := json.NewDecoder(io.MultiReader(strings.NewReader("{"), bytes.NewReader(body)))
	d.UseNumber()
	if _, err := d.Token(); err != nil {
		return nil, false
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return nil, false
		}
		if k == "resourceType" {
			v, err := d.Token()
			return v, err == nil
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return nil, false
}

// nestedResource walks a resource held by an element of type Resource.
func (w *walker) nestedResource() {
	parent := w.res
	idx := -1
	if parent.relIs("contained") {
		if parent.contained >= 0 {
			w.issue(SeverityError, CodeInvariant,
				"a contained resource must not contain other resources (dom-2)")
			w.skipFrom(json.Delim('{'))
			return
		}
		idx = parent.lastIndex
	}
	f := w.resource(parent, idx)
	if f != nil && parent.bundle != nil && parent.relIs("entry", "resource") {
		parent.bundle.entryResource(f)
	}
}

// enter records that the walk entered element name of the current
// resource, noting the places phix rules look at.
func (w *walker) enter(name string) {
	f := w.res
	f.rel = append(f.rel, name)
	switch {
	case f.relIs("meta", "security"):
		f.security = true
	case f.relIs("meta", "lastUpdated"):
		f.lastUpdated = true
	case f.bundle != nil:
		f.bundle.enter(f)
	}
}

func (w *walker) leave() { w.res.rel = w.res.rel[:len(w.res.rel)-1] }

// enterItem records that the walk entered item i of an array.
func (w *walker) enterItem(i int) {
	f := w.res
	f.lastIndex = i
	if f.bundle != nil && f.relIs("entry") {
		f.bundle.startEntry(i)
	}
}

// capture records string values that phix rules need later.
func (w *walker) capture(owner *typeDef, e *elemDef, s string) {
	f := w.res
	switch {
	case f.relIs("id"):
		f.id = s
	case f.relIs("meta", "versionId"):
		f.versionID = s
	case owner.name == "Reference" && e.name == "reference":
		w.reference(s)
	case strings.HasPrefix(s, "#") && (e.typ.name == "canonical" || e.typ.name == "uri" || e.typ.name == "url"):
		f.scope.refs = append(f.scope.refs, localRef{target: s[1:], from: f.contained})
	case f.bundle != nil:
		f.bundle.capture(f, s)
	}
}

// reference records Reference.reference values that must resolve inside
// the body: #id in the container, urn:uuid: and urn:oid: in the Bundle.
func (w *walker) reference(s string) {
	f := w.res
	// The issue names the Reference element, not its reference member.
	expr := w.expr()
	if i := strings.LastIndexByte(expr, '.'); i > 0 {
		expr = expr[:i]
	}
	switch {
	case strings.HasPrefix(s, "#"):
		f.scope.refs = append(f.scope.refs, localRef{target: s[1:], expr: expr, from: f.contained, check: true})
	case (strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")) && len(w.bundles) > 0:
		b := w.bundles[len(w.bundles)-1]
		b.urnRefs = append(b.urnRefs, localRef{target: s, expr: expr, check: true})
	}
}

func (w *walker) closeContained(f *resFrame) {
	sc := f.scope
	switch {
	case f.id == "":
		w.issueAt(f.expr, SeverityError, CodeRequired,
			"contained resource has no id, so nothing can reference it")
	case sc.byID[f.id]:
		w.issueAt(f.expr, SeverityError, CodeInvalid,
			fmt.Sprintf("duplicate contained resource id %q", f.id))
	}
	if sc.byID == nil {
		sc.byID = make(map[string]bool)
	}
	sc.byID[f.id] = true
	if f.versionID != "" || f.lastUpdated {
		w.issueAt(f.expr, SeverityError, CodeInvariant,
			"a contained resource must not have meta.versionId or meta.lastUpdated (dom-4)")
	}
	if f.security {
		w.issueAt(f.expr, SeverityError, CodeInvariant,
			"a contained resource must not have security labels (dom-5)")
	}
	sc.contained = append(sc.contained, containedRes{id: f.id, expr: f.expr, index: f.contained})
}

// closeScope checks the local references of a container resource: each
// #id must name a contained resource, and each contained resource must be
// referenced from the rest of the resource or refer to it (dom-3).
func (w *walker) closeScope(f *resFrame) {
	sc := f.scope
	referenced := make(map[string]bool, len(sc.refs))
	selfRef := make(map[int]bool)
	for _, r := range sc.refs {
		referenced[r.target] = true
		if r.target == "" {
			selfRef[r.from] = true
			continue
		}
		if r.check && !sc.byID[r.target] {
			w.issueAt(r.expr, SeverityError, CodeInvalid, fmt.Sprintf(
				"reference #%s does not match any contained resource id", r.target))
		}
	}
	for _, c := range sc.contained {
		if c.id != "" && !referenced[c.id] && !selfRef[c.index] {
			w.issueAt(c.expr, SeverityError, CodeInvariant, fmt.Sprintf(
				"contained resource %s is not referenced from the rest of the resource (dom-3)", c.id))
		}
	}
}
