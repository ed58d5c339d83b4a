package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Handler is the FHIR R4 ingress endpoint: it validates each request and
// publishes the body through phix exactly as received. Mount it at the
// FHIR base URL (for example with http.StripPrefix("/fhir", h)). It is safe
// for concurrent use.
//
// Routes, relative to the base:
//
//	POST /                  transaction or batch Bundle (or a notification)
//	POST /{type}            create
//	PUT  /{type}/{id}       update
//	POST NotificationPath   subscription notification (rest-hook)
//	GET  /metadata          CapabilityStatement of the above
type Handler struct {
	cfg          Config
	capabilities []byte // CapabilityStatement served at /metadata
}

// NewHandler returns a handler for cfg. It fails if cfg.Publish is nil.
func NewHandler(cfg Config) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d, err := r4()
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, capabilities: capabilityStatement(d, cfg.Now())}, nil
}

// Subscriptions returns the state of every subscription that has sent a
// notification.
func (h *Handler) Subscriptions() []SubscriptionState { return h.cfg.Tracker.Subscriptions() }

// exchange is one request being served.
type exchange struct {
	w     http.ResponseWriter
	r     *http.Request
	info  RequestInfo
	start time.Time
	body  []byte
}

// route is what a request path and method ask for.
type route struct {
	interaction string // create, update, base, notification or capabilities
	typ, id     string
}

// ServeHTTP serves one request as described for [Handler]. It reads the
// whole body (within Config.MaxBodyBytes) before answering.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{w: w, r: r, start: h.cfg.Now(), info: RequestInfo{Interaction: "unknown"}}
	defer h.finish(x)
	rt, status, issue := h.route(r, w.Header())
	if status != 0 {
		x.fail(status, issue)
		return
	}
	x.info.Interaction, x.info.ResourceType = rt.interaction, rt.typ
	if rt.interaction == "capabilities" {
		x.write(http.StatusOK, h.capabilities, nil)
		return
	}
	if !h.readBody(x) {
		return
	}
	if rt.interaction == "notification" {
		h.notification(x)
		return
	}
	h.resource(x, rt)
}

func (h *Handler) finish(x *exchange) {
	if h.cfg.OnRequest != nil {
		x.info.Bytes = len(x.body)
		x.info.Duration = h.cfg.Now().Sub(x.start)
		h.cfg.OnRequest(x.info)
	}
}

// route maps method and path to a route, or to the status and issue of
// a refusal (setting Allow in hdr for 405).
func (h *Handler) route(r *http.Request, hdr http.Header) (route, int, Issue) {
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	notSupported := func(status int, diag string) (route, int, Issue) {
		return route{}, status, Issue{SeverityError, CodeNotSupported, "", diag}
	}
	var rt route
	switch segs := strings.Split(strings.Trim(p, "/"), "/"); {
	case p == h.cfg.NotificationPath:
		if h.cfg.PublishEvent == nil {
			return notSupported(http.StatusNotFound, "subscription notifications are not enabled")
		}
		rt = route{interaction: "notification"}
	case p == "/":
		rt = route{interaction: "base"}
	case p == "/metadata":
		rt = route{interaction: "capabilities"}
	case len(segs) == 1:
		rt = route{interaction: "create", typ: segs[0]}
	case len(segs) == 2:
		rt = route{interaction: "update", typ: segs[0], id: segs[1]}
	default:
		return notSupported(http.StatusNotFound, "phix accepts only create, update, transaction and batch")
	}
	if rt.typ != "" && !IsResourceType(rt.typ) {
		return notSupported(http.StatusNotFound, fmt.Sprintf("%s is not an R4 resource type", rt.typ))
	}
	if issue, ok := conditional(r); !ok {
		return route{}, http.StatusBadRequest, issue
	}
	want := http.MethodPost
	switch rt.interaction {
	case "update":
		want = http.MethodPut
	case "capabilities":
		want = http.MethodGet
	}
	if r.Method != want {
		hdr.Set("Allow", want)
		return notSupported(http.StatusMethodNotAllowed, fmt.Sprintf("use %s here", want))
	}
	return rt, 0, Issue{}
}

// conditional refuses conditional interactions: phix forwards only the
// body, so a condition in a header or query would be lost. A transaction
// Bundle carries conditions in entry.request, inside the forwarded bytes.
func conditional(r *http.Request) (Issue, bool) {
	for _, hd := range []string{"If-None-Exist", "If-Match", "If-None-Match", "If-Modified-Since"} {
		if r.Header.Get(hd) != "" {
			return Issue{SeverityError, CodeNotSupported, "", hd +
				" is not forwarded by phix; send a transaction Bundle whose entry.request carries the condition"}, false
		}
	}
	for k := range r.URL.Query() {
		if k != "_format" && k != "_pretty" {
			return Issue{SeverityError, CodeNotSupported, "",
				"search parameters (conditional interactions) are not forwarded by phix; use a transaction Bundle"}, false
		}
	}
	return Issue{}, true
}

// readBody checks the content type and reads the body within the size
// limit, refusing an oversized body with 413 before any of it is parsed.
func (h *Handler) readBody(x *exchange) bool {
	if issue, ok := contentType(x.r.Header.Get("Content-Type")); !ok {
		x.fail(http.StatusUnsupportedMediaType, issue)
		return false
	}
	tooLarge := Issue{SeverityError, CodeTooLong, "",
		fmt.Sprintf("request body is larger than the limit of %d bytes", h.cfg.MaxBodyBytes)}
	if x.r.ContentLength > h.cfg.MaxBodyBytes {
		x.fail(http.StatusRequestEntityTooLarge, tooLarge)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, h.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		x.fail(http.StatusRequestEntityTooLarge, tooLarge)
		return false
	case err != nil:
		x.fail(http.StatusBadRequest, Issue{SeverityError, CodeStructure, "", "request body could not be read"})
		return false
	}
	x.body = body
	return true
}

// contentType accepts FHIR JSON: application/fhir+json or
// application/json, R4 if a fhirVersion is given.
func contentType(v string) (Issue, bool) {
	mt, params, err := mime.ParseMediaType(v)
	refuse := func(diag string) (Issue, bool) {
		return Issue{SeverityError, CodeNotSupported, "", diag}, false
	}
	if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		return refuse("Content-Type must be application/fhir+json")
	}
	if fv, ok := params["fhirversion"]; ok && fv != "4.0" && !strings.HasPrefix(fv, "4.0.") {
		return refuse(fmt.Sprintf("this is an R4 (4.0) endpoint, not fhirVersion %s", fv))
	}
	return Issue{}, true
}

// prefer reports the Prefer header's handling and return preferences.
func prefer(r *http.Request) (strict, minimal bool) {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			switch strings.ReplaceAll(strings.TrimSpace(p), " ", "") {
			case "handling=strict":
				strict = true
			case "return=minimal":
				minimal = true
			}
		}
	}
	return strict, minimal
}

func (h *Handler) options(r *http.Request) Options {
	strict, _ := prefer(r)
	return Options{Lenient: h.cfg.Lenient && !strict, MaxBundleEntries: h.cfg.MaxBundleEntries}
}

// capabilityStatement renders the R4 CapabilityStatement (kind instance)
// of what the handler serves: create and update of every resource type,
// and transaction and batch at the base. date is when it was built, so
// the statement is a fixed document for the life of the handler.
func capabilityStatement(d *defs, date time.Time) []byte {
	type interaction struct {
		Code string `json:"code"`
	}
	type resource struct {
		Type        string        `json:"type"`
		Interaction []interaction `json:"interaction"`
	}
	types := make([]string, 0, len(d.resources))
	for name := range d.resources {
		types = append(types, name)
	}
	sort.Strings(types)
	resources := make([]resource, len(types))
	for i, name := range types {
		resources[i] = resource{name, []interaction{{"create"}, {"update"}}}
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         date.UTC().Format(time.RFC3339),
		"kind":         "instance",
		"software":     map[string]string{"name": "phix"},
		"implementation": map[string]string{
			"description": "phix FHIR ingress: accepted requests are sealed and forwarded, not stored for reading",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json"},
		"rest": []map[string]any{{
			"mode":        "server",
			"resource":    resources,
			"interaction": []interaction{{"transaction"}, {"batch"}},
		}},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		// Only strings, slices and maps of them are marshalled.
		panic("fhir: marshalling CapabilityStatement: " + err.Error())
	}
	return b
}
