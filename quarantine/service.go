package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/internal/subjects"
)

// Actions an operator can ask for.
const (
	ActionList    = "list"
	ActionShow    = "show"
	ActionRelease = "release"
	ActionDrop    = "drop"
)

// Request is an operator's request to the [Service].
type Request struct {
	Action string `json:"action"`
	Seq    uint64 `json:"seq,omitempty"` // for show, release and drop
}

// Response is the [Service]'s answer.
type Response struct {
	Items      []Item `json:"items,omitempty"` // list: all; show, release, drop: the one
	ReleasedAs uint64 `json:"released_as,omitempty"`
	Error      string `json:"error,omitempty"`
	Code       string `json:"code,omitempty"` // "not-found", "denied", "bad-original", "failed"
}

// requestTimeout bounds one operation.
const requestTimeout = 30 * time.Second

// Service performs quarantine operations for operators inside the broker.
type Service struct {
	store store
	// Authorize reports whether machine may manage the quarantine.
	authorize func(machine string) bool
	// record appends an audit record; its error is not the operator's.
	record func(context.Context, audit.Record)
}

// NewService returns a service acting through js, the broker's admin
// JetStream context. authorize decides who may act; record receives one
// [audit.KindQuarantineAction] record per request.
func NewService(js jetstream.JetStream, authorize func(machine string) bool,
	record func(context.Context, audit.Record)) *Service {
	return &Service{store: store{js: js}, authorize: authorize, record: record}
}

// Serve subscribes nc to every machine's quarantine request subject and
// answers each request. Unsubscribe the returned subscription to stop.
func (s *Service) Serve(nc *nats.Conn) (*nats.Subscription, error) {
	return nc.Subscribe(subjects.QuarantineAdminPrefix+".*", func(m *nats.Msg) {
		operator := m.Subject[len(subjects.QuarantineAdminPrefix)+1:]
		var req Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			req.Action = "invalid"
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		b, _ := json.Marshal(s.Handle(ctx, operator, req))
		m.Respond(b)
	})
}

// Handle performs req for operator and records it in the audit trail.
func (s *Service) Handle(ctx context.Context, operator string, req Request) Response {
	rec := audit.Record{
		Kind: audit.KindQuarantineAction, Actor: operator, Action: req.Action,
		Outcome: audit.OutcomeOK,
	}
	if req.Seq != 0 {
		rec.Target = strconv.FormatUint(req.Seq, 10)
	}
	resp := s.do(ctx, operator, req)
	if resp.Error != "" {
		rec.Outcome, rec.Reason = audit.OutcomeRefused, resp.Code
		if resp.Code == "failed" {
			rec.Outcome = audit.OutcomeFailed
		}
	}
	if len(resp.Items) == 1 && req.Action != ActionList {
		it := resp.Items[0]
		rec.MessageID, rec.Subject, rec.Sender, rec.Digest = it.MessageID, it.OriginalSubject, it.Sender, it.Digest
		rec.Recipient, rec.Detail = it.QuarantinedBy, "quarantine reason "+it.Reason
	}
	if req.Action == ActionList {
		rec.Detail = strconv.Itoa(len(resp.Items)) + " messages listed"
	}
	rec.Seq = resp.ReleasedAs
	s.record(ctx, rec)
	return resp
}

func (s *Service) do(ctx context.Context, operator string, req Request) Response {
	if !subjects.ValidName(operator) || !s.authorize(operator) {
		return fail(ErrDenied)
	}
	switch req.Action {
	case ActionList:
		items, err := s.store.list(ctx)
		if err != nil {
			return fail(err)
		}
		return Response{Items: items}
	case ActionShow:
		m, err := s.store.get(ctx, req.Seq)
		if err != nil {
			return fail(err)
		}
		return Response{Items: []Item{describe(m)}}
	case ActionRelease:
		it, seq, err := s.store.release(ctx, req.Seq)
		resp := Response{ReleasedAs: seq}
		if it.Seq != 0 {
			resp.Items = []Item{it}
		}
		if err != nil {
			r := fail(err)
			r.Items, r.ReleasedAs = resp.Items, seq
			return r
		}
		return resp
	case ActionDrop:
		it, err := s.store.drop(ctx, req.Seq)
		if err != nil {
			r := fail(err)
			if it.Seq != 0 {
				r.Items = []Item{it}
			}
			return r
		}
		return Response{Items: []Item{it}}
	}
	return Response{Error: "unknown action", Code: "failed"}
}

// codes maps errors to stable response codes and back.
var codes = map[string]error{"not-found": ErrNotFound, "denied": ErrDenied, "bad-original": ErrBadOriginal}

func fail(err error) Response {
	for code, e := range codes {
		if errors.Is(err, e) {
			return Response{Error: err.Error(), Code: code}
		}
	}
	return Response{Error: "operation failed", Code: "failed"}
}
