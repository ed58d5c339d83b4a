package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// resource serves create, update and POST to the base: validate, check
// the body against the route, publish the original bytes, answer 202.
func (h *Handler) resource(x *exchange, rt route) {
	res := Validate(x.body, h.options(x.r))
	if rt.interaction == "base" && res.Valid() && res.BundleType == "history" && h.cfg.PublishEvent != nil {
		// A rest-hook endpoint configured as the base URL.
		x.info.Interaction = "notification"
		h.notify(x)
		return
	}
	x.info.ResourceType = res.ResourceType
	if rt.interaction == "base" && res.BundleType != "" {
		x.info.Interaction = res.BundleType
	}
	issues := append(res.Issues, routeIssues(rt, res)...)
	if errorCount(issues) > 0 {
		status := http.StatusBadRequest
		if res.TooManyEntries {
			status = http.StatusRequestEntityTooLarge
		}
		x.respond(status, issues)
		return
	}
	id, err := h.cfg.Publish(x.r.Context(), res.ResourceType, x.body)
	if err != nil {
		x.info.Err = err
		x.fail(http.StatusServiceUnavailable, Issue{SeverityError, CodeTransient, "",
			"phix could not store the message for every recipient; retry the request"})
		return
	}
	x.accepted(id, rt, res, issues)
}

// routeIssues checks the body against the endpoint it was sent to, so
// that an Observation is never stored as a Patient.
func routeIssues(rt route, res *Result) []Issue {
	invalid := func(expr, diag string) []Issue {
		return []Issue{{SeverityError, CodeInvalid, expr, diag}}
	}
	got := res.ResourceType
	if got == "" {
		return nil // missing or unknown resourceType is already reported
	}
	switch rt.interaction {
	case "create", "update":
		if got != rt.typ {
			return invalid("", fmt.Sprintf("resourceType %s does not match endpoint type %s", got, rt.typ))
		}
	case "base":
		if got != "Bundle" || (res.BundleType != "" && res.BundleType != "transaction" && res.BundleType != "batch") {
			return invalid("", "POST to the base accepts transaction and batch Bundles; "+
				"send other resources to [base]/"+got)
		}
	}
	if rt.interaction != "update" {
		return nil
	}
	switch {
	case res.ID == "":
		return []Issue{{SeverityError, CodeRequired, got + ".id",
			fmt.Sprintf("an update (PUT %s/%s) needs the resource id in the body", rt.typ, rt.id)}}
	case res.ID != rt.id:
		return invalid(got+".id", fmt.Sprintf("resource id %s does not match the id %s in the URL", res.ID, rt.id))
	}
	return nil
}

// accepted answers a published request: 202, because the resource is
// stored by phix for delivery but not yet by any FHIR server, so there is
// no server id or version to put in a Location header.
func (x *exchange) accepted(id string, rt route, res *Result, issues []Issue) {
	x.info.MessageID = id
	x.w.Header().Set(HeaderMessageID, id)
	if _, minimal := prefer(x.r); minimal {
		x.write(http.StatusAccepted, nil, issues)
		return
	}
	if rt.interaction == "base" {
		x.write(http.StatusAccepted, responseBundle(res, issues), issues)
		return
	}
	note := Issue{SeverityInformation, CodeInformational, "", "accepted for delivery as phix message " + id +
		"; no FHIR server has stored it yet, so it has no server id"}
	x.write(http.StatusAccepted, OperationOutcome(append([]Issue{note}, issues...)), issues)
}

// responseBundle is the transaction-response or batch-response for an
// accepted Bundle: one entry per request entry, in order, each "202
// Accepted" with no location, since phix does not assign ids; the
// receiving FHIR server does, when it processes the forwarded Bundle.
func responseBundle(res *Result, issues []Issue) []byte {
	type response struct {
		Status  string          `json:"status"`
		Outcome json.RawMessage `json:"outcome,omitempty"`
	}
	type entry struct {
		Response response `json:"response"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry,omitempty"`
	}{ResourceType: "Bundle", Type: res.BundleType + "-response", Entry: make([]entry, res.Entries)}
	for i := range out.Entry {
		out.Entry[i].Response.Status = "202 Accepted"
		if mine := entryIssues(issues, i); len(mine) > 0 {
			out.Entry[i].Response.Outcome = OperationOutcome(mine)
		}
	}
	if rest := entryIssues(issues, -1); len(rest) > 0 && len(out.Entry) > 0 {
		out.Entry[0].Response.Outcome = OperationOutcome(append(entryIssues(issues, 0), rest...))
	}
	b, _ := json.Marshal(out)
	return b
}

// entryIssues returns the issues about entry i, or with i < 0 those about
// no entry.
func entryIssues(issues []Issue, i int) []Issue {
	var out []Issue
	for _, is := range issues {
		if entryIndex(is.Expression) == i {
			out = append(out, is)
		}
	}
	return out
}

// entryIndex returns i for an expression under Bundle.entry[i], or -1.
func entryIndex(expr string) int {
	rest, ok := strings.CutPrefix(expr, "Bundle.entry[")
	if !ok {
		return -1
	}
	n, _, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(n)
	if !ok || err != nil {
		return -1
	}
	return i
}

// notification serves the rest-hook endpoint.
func (h *Handler) notification(x *exchange) {
	res := Validate(x.body, h.options(x.r))
	if !res.Valid() {
		x.respond(http.StatusBadRequest, res.Issues)
		return
	}
	h.notify(x)
}

// notify handles a valid notification Bundle: it answers 200 with an
// empty body as soon as the event record is stored (the sender must not
// need a FHIR body back). Heartbeats only update the subscription state
// unless they reveal missed events.
func (h *Handler) notify(x *exchange) {
	n, err := ParseNotification(x.body)
	if err != nil {
		diag := "not a subscription notification: expected a history Bundle starting with a subscription status"
		if !errors.Is(err, ErrNotNotification) {
			diag = strings.TrimPrefix(err.Error(), "fhir: ")
		}
		x.fail(http.StatusBadRequest, Issue{SeverityError, CodeInvalid, "", diag})
		return
	}
	now := h.cfg.Now()
	ev := &Event{
		Subscription: n.Subscription, Topic: n.Topic, NotificationType: n.Type,
		EventsSinceStart: n.EventsSinceStart, Received: now.UTC().Format(time.RFC3339Nano), receivedAt: now,
	}
	if n.Type == "event-notification" {
		ev.Notification = x.body
	}
	id, err := h.cfg.Tracker.handle(x.r.Context(), n, ev, publishFunc(h.cfg.PublishEvent))
	if err != nil {
		x.info.Err = err
		x.fail(http.StatusServiceUnavailable, Issue{SeverityError, CodeTransient, "",
			"phix could not store the notification; retry"})
		return
	}
	x.info.ResourceType = "Bundle"
	if id != "" {
		x.info.MessageID = id
		x.w.Header().Set(HeaderMessageID, id)
	}
	x.info.Status = http.StatusOK
	x.w.WriteHeader(http.StatusOK)
}
