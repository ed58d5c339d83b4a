package monitor_test

import (
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/audit"
	"phix.dev/phix/monitor"
	"phix.dev/phix/policy"
)

const monitoring = `monitoring:
  refusals_per_minute: 5
  messages_per_minute: 100
  failures_per_minute: 3
  rate_factor: 4
  hours:
    - from: lab-feed
      to: [billing]
      between: "06:00-20:00"
`

func testPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	y := strings.Replace(string(policy.Default()), "monitoring: {}\n", monitoring, 1)
	p, err := policy.Parse("monitor-test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy.Parse() = %v, want nil", err)
	}
	return p
}

// traffic builds a stream of records.
type traffic struct {
	now  time.Time
	recs []audit.Record
}

func (tr *traffic) add(r audit.Record) {
	r.Index, r.Time = uint64(len(tr.recs)), tr.now
	if r.Source == "" {
		r.Source = audit.SourceMachine
	}
	tr.recs = append(tr.recs, r)
	tr.now = tr.now.Add(time.Millisecond)
}

func (tr *traffic) publish(from, to, typ string, n int) {
	for i := range n {
		id := from + to + typ + tr.now.Format("150405.000") + string(rune('a'+i%26))
		tr.add(audit.Record{Kind: audit.KindPublish, Actor: from, Sender: from, Recipient: to, Type: typ,
			MessageID: id, Outcome: audit.OutcomeOK})
		tr.add(audit.Record{Kind: audit.KindDelivery, Actor: to, Source: audit.SourceBroker, MessageID: id, Outcome: audit.OutcomeOK})
		tr.add(audit.Record{Kind: audit.KindOpen, Actor: to, MessageID: id, KeyCached: i%2 == 0, Outcome: audit.OutcomeOK})
	}
}

func (tr *traffic) quarantine(by, reason string, n int) {
	for range n {
		tr.add(audit.Record{Kind: audit.KindQuarantine, Actor: by, Reason: reason, Sender: "lab-feed", Outcome: audit.OutcomeRefused})
	}
}

func (tr *traffic) refusals(n int) {
	for range n {
		tr.add(audit.Record{Kind: audit.KindPermissionRefusal, Actor: "billing", Source: audit.SourceBroker,
			Subject: "phix.msg.lab-feed.ehr-ingest.hl7v2", Outcome: audit.OutcomeRefused})
	}
}

// normalMinutes is ordinary traffic: steady publishes on declared flows
// within hours, a few refusals and failures under the thresholds.
func (tr *traffic) normalMinutes(n int) {
	for range n {
		tr.publish("lab-feed", "ehr-ingest", "hl7v2", 5)
		tr.publish("lab-feed", "billing", "fhir", 2)
		tr.publish("ehr-ingest", "billing", "fhir", 3)
		tr.refusals(2)
		tr.quarantine("ehr-ingest", "bad-signature", 1)
		tr.quarantine("ehr-ingest", "handler-failed", 5)
		tr.add(audit.Record{Kind: audit.KindConnect, Actor: "billing", Source: audit.SourceBroker})
		tr.now = tr.now.Truncate(time.Minute).Add(time.Minute + time.Second)
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name   string
		inject func(tr *traffic)
		want   []string
	}{
		{"normal traffic raises nothing", func(tr *traffic) {}, nil},
		{"a sender far above its baseline", func(tr *traffic) {
			tr.publish("ehr-ingest", "billing", "fhir", 40)
		}, []string{monitor.RuleSenderRate}},
		{"a sender over the absolute rate", func(tr *traffic) {
			tr.publish("lab-feed", "ehr-ingest", "hl7v2", 101)
		}, []string{monitor.RuleSenderRate}},
		{"a burst of verification failures", func(tr *traffic) {
			tr.quarantine("ehr-ingest", "open-failed", 4)
		}, []string{monitor.RuleFailureBurst}},
		{"a burst of permission refusals", func(tr *traffic) {
			tr.refusals(6)
		}, []string{monitor.RuleRefusalBurst}},
		{"a machine the policy does not list", func(tr *traffic) {
			tr.add(audit.Record{Kind: audit.KindConnect, Actor: "mallory", Source: audit.SourceBroker})
		}, []string{monitor.RuleUnknownSender}},
		{"a message from an unknown sender", func(tr *traffic) {
			tr.add(audit.Record{Kind: audit.KindQuarantine, Actor: "ehr-ingest", Reason: "unknown-sender", Sender: "mallory"})
		}, []string{monitor.RuleUnknownSender}},
		{"a recipient never seen for the flow", func(tr *traffic) {
			tr.publish("lab-feed", "auditor", "hl7v2", 1)
		}, []string{monitor.RuleNewRecipient}},
		{"a flow active outside its hours", func(tr *traffic) {
			tr.now = tr.now.Add(12 * time.Hour) // 21:00
			tr.publish("lab-feed", "billing", "fhir", 1)
		}, []string{monitor.RuleOutsideHours}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var published []monitor.Alert
			mon, err := monitor.New(monitor.Config{Policy: testPolicy(t), Alert: func(a monitor.Alert) {
				published = append(published, a)
			}})
			if err != nil {
				t.Fatalf("New() = %v, want nil", err)
			}
			tr := &traffic{now: time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC)}
			tr.normalMinutes(6)
			tc.inject(tr)
			for _, r := range tr.recs {
				mon.Observe(r)
			}
			var got []string
			for _, a := range mon.Alerts() {
				got = append(got, a.Rule)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alerts (-want +got):\n%s\n%+v", diff, mon.Alerts())
			}
			if len(published) != len(got) {
				t.Errorf("published %d alerts, want %d", len(published), len(got))
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	mon, err := monitor.New(monitor.Config{Policy: testPolicy(t)})
	if err != nil {
		t.Fatalf("New() = %v, want nil", err)
	}
	tr := &traffic{now: time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC)}
	tr.normalMinutes(1)
	for _, r := range tr.recs {
		mon.Observe(r)
	}
	rec := httptest.NewRecorder()
	mon.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`phix_publish_total{outcome="ok",sender="lab-feed"} 7`,
		`phix_delivery_total{recipient="billing"} 5`,
		`phix_open_total{key_cached="true",recipient="ehr-ingest"} 3`,
		`phix_failures_total{reason="bad-signature"} 1`,
		`phix_failures_total{reason="permission-refusal"} 2`,
		`phix_latency_seconds_count{stage="open"} 10`,
	} {
		if !slices.Contains(strings.Split(string(body), "\n"), want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
}
