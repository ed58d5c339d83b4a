package fhir

import (
	"fmt"
	"strings"
)

// bundleFrame collects what the Bundle rules need about one Bundle while
// it is walked; the rules run when the Bundle ends, so the order of its
// members does not matter.
type bundleFrame struct {
	expr     string
	typ      string
	hasTotal bool
	count    int  // entries seen, including those past the limit
	tooMany  bool // more entries than Options.MaxBundleEntries
	entries  []entryInfo
	urnRefs  []localRef // urn:uuid: and urn:oid: references in entries
}

// entryInfo is what the Bundle rules need about one entry.
type entryInfo struct {
	index                               int
	fullURL, method, url                string
	resType, resID, versionID           string
	resource, request, response, search bool
}

func (b *bundleFrame) startEntry(i int) {
	b.entries = append(b.entries, entryInfo{index: i})
}

func (b *bundleFrame) cur() *entryInfo {
	if len(b.entries) == 0 {
		return &entryInfo{} // outside an entry; nothing to record
	}
	return &b.entries[len(b.entries)-1]
}

// enter notes the Bundle elements whose presence the rules check.
func (b *bundleFrame) enter(f *resFrame) {
	if f.relIs("total") {
		b.hasTotal = true
		return
	}
	if len(f.rel) != 2 || f.rel[0] != "entry" {
		return
	}
	e := b.cur()
	switch f.rel[1] {
	case "resource":
		e.resource = true
	case "request":
		e.request = true
	case "response":
		e.response = true
	case "search":
		e.search = true
	}
}

func (b *bundleFrame) capture(f *resFrame, s string) {
	switch {
	case f.relIs("type"):
		b.typ = s
	case f.relIs("entry", "fullUrl"):
		b.cur().fullURL = s
	case f.relIs("entry", "request", "method"):
		b.cur().method = s
	case f.relIs("entry", "request", "url"):
		b.cur().url = s
	}
}

func (b *bundleFrame) entryResource(f *resFrame) {
	e := b.cur()
	e.resType, e.resID, e.versionID = f.typ.name, f.id, f.versionID
}

// bundleEntryLimit counts Bundle.entry items and, past the limit, skips
// them unvalidated so that an oversized Bundle costs one cheap pass.
func (w *walker) bundleEntryLimit(owner *typeDef, e *elemDef, n int) bool {
	f := w.res
	if f.bundle == nil || owner != f.typ || e.name != "entry" {
		return false
	}
	f.bundle.count = n + 1
	if w.opts.MaxBundleEntries < 0 || n < w.opts.MaxBundleEntries {
		return false
	}
	f.bundle.tooMany = true
	w.skip()
	return true
}

// closeBundle applies the R4 Bundle invariants and the phix Bundle rules.
func (w *walker) closeBundle(f *resFrame) {
	b := f.bundle
	if b.tooMany {
		w.issueAt(b.expr+".entry", SeverityError, CodeTooLong, fmt.Sprintf(
			"bundle has %d entries, limit %d", b.count, w.opts.MaxBundleEntries))
		return
	}
	if b.hasTotal && b.typ != "searchset" && b.typ != "history" {
		w.issueAt(b.expr+".total", SeverityError, CodeInvariant,
			"total is only allowed in a searchset or history Bundle (bdl-1)")
	}
	seen := make(map[string]int, len(b.entries))
	for i := range b.entries {
		e := &b.entries[i]
		ex := fmt.Sprintf("%s.entry[%d]", b.expr, e.index)
		w.entryInvariants(b, e, ex)
		w.uniqueFullURL(b, e, ex, seen)
		if (b.typ == "transaction" || b.typ == "batch") && e.resource {
			w.checkRequestURL(e, ex)
		}
	}
	w.firstEntry(b)
	if b.typ == "transaction" {
		w.resolveURNs(b)
	}
}

func (w *walker) entryInvariants(b *bundleFrame, e *entryInfo, ex string) {
	fail := func(expr, diag string) { w.issueAt(expr, SeverityError, CodeInvariant, diag) }
	if e.search && b.typ != "searchset" {
		fail(ex+".search", "search is only allowed in a searchset Bundle (bdl-2)")
	}
	switch b.typ {
	case "transaction", "batch", "history":
		if !e.request {
			fail(ex, fmt.Sprintf("request is required in a %s Bundle (bdl-3)", b.typ))
		}
	}
	switch b.typ {
	case "transaction-response", "batch-response", "history":
		if !e.response {
			fail(ex, fmt.Sprintf("response is required in a %s Bundle (bdl-4)", b.typ))
		}
	}
	if !e.resource && !e.request && !e.response {
		fail(ex, "an entry must have a resource, a request or a response (bdl-5)")
	}
	if strings.Contains(e.fullURL, "/_history/") {
		fail(ex+".fullUrl", "fullUrl must not be a version-specific reference (bdl-8)")
	}
}

// uniqueFullURL applies bdl-7: outside history Bundles, two entries may
// share a fullUrl only as different versions. A duplicate in a
// transaction would let references resolve to the wrong patient.
func (w *walker) uniqueFullURL(b *bundleFrame, e *entryInfo, ex string, seen map[string]int) {
	if e.fullURL == "" || b.typ == "history" {
		return
	}
	key := e.fullURL + "\x00" + e.versionID
	first, dup := seen[key]
	if !dup {
		seen[key] = e.index
		return
	}
	w.issueAt(ex+".fullUrl", SeverityError, CodeInvariant, fmt.Sprintf(
		"duplicate fullUrl %s in entry[%d] and entry[%d] (bdl-7)", e.fullURL, first, e.index))
}

// checkRequestURL makes sure a transaction or batch entry's request.url
// names the type of the resource it carries (and its id, for PUT), so that
// an Organization can never be written as Patient/x.
func (w *walker) checkRequestURL(e *entryInfo, ex string) {
	if e.url == "" || e.resType == "" || e.method == "PATCH" {
		return // PATCH carries a Binary or Parameters body, not the target
	}
	typ, id := requestTarget(e.url)
	fail := func(diag string) { w.issueAt(ex+".request.url", SeverityError, CodeInvalid, diag) }
	switch {
	case strings.HasPrefix(typ, "$"):
		return // an operation on the server, such as $process-message
	case !IsResourceType(typ):
		fail(fmt.Sprintf("request.url %s does not name an R4 resource type", e.url))
	case typ != e.resType:
		fail(fmt.Sprintf("request.url names %s but the entry's resource is %s", typ, e.resType))
	case e.method == "PUT" && id != "" && e.resID != "" && id != e.resID && !strings.HasPrefix(id, "$"):
		fail(fmt.Sprintf("request.url id %s does not match resource id %s", id, e.resID))
	}
}

// requestTarget splits a request URL such as "Patient/7?x=y" or
// "https://host/fhir/Patient/7" into type and id.
func requestTarget(u string) (typ, id string) {
	u, _, _ = strings.Cut(u, "?")
	if _, rest, ok := strings.Cut(u, "://"); ok {
		// Absolute: the type is the last segment that names one.
		segs := strings.Split(rest, "/")
		for i := len(segs) - 1; i > 0; i-- {
			if IsResourceType(segs[i]) {
				if i+1 < len(segs) {
					id = segs[i+1]
				}
				return segs[i], id
			}
		}
		return "", ""
	}
	typ, id, _ = strings.Cut(strings.TrimPrefix(u, "/"), "/")
	id, _, _ = strings.Cut(id, "/")
	return typ, id
}

// firstEntry applies bdl-11 and bdl-12: a document starts with its
// Composition, a message with its MessageHeader.
func (w *walker) firstEntry(b *bundleFrame) {
	want, rule := "", ""
	switch b.typ {
	case "document":
		want, rule = "Composition", "bdl-11"
	case "message":
		want, rule = "MessageHeader", "bdl-12"
	default:
		return
	}
	if len(b.entries) == 0 || b.entries[0].resType != want {
		w.issueAt(b.expr+".entry[0]", SeverityError, CodeInvariant, fmt.Sprintf(
			"a %s Bundle must start with a %s (%s)", b.typ, want, rule))
	}
}

// resolveURNs makes sure every urn:uuid: or urn:oid: reference in a
// transaction names the fullUrl of one of its entries: the server
// resolves them to the ids it assigns, and an unresolved one would
// dangle or fail the whole transaction downstream.
func (w *walker) resolveURNs(b *bundleFrame) {
	if len(b.urnRefs) == 0 {
		return
	}
	urls := make(map[string]bool, len(b.entries))
	for _, e := range b.entries {
		urls[e.fullURL] = true
	}
	for _, r := range b.urnRefs {
		if !urls[r.target] {
			w.issueAt(r.expr, SeverityError, CodeInvalid, fmt.Sprintf(
				"reference %s does not match any fullUrl in the transaction", r.target))
		}
	}
}
