// Package monitor watches phix's audit records as they are stored: it
// keeps Prometheus metrics (publishes, deliveries, openings, failures by
// reason, key provider calls, latencies) and evaluates anomaly rules in
// real time, raising an [Alert] for each anomaly.
//
// # Rules
//
//   - sender-rate: a machine publishes more than RateFactor times its own
//     baseline per minute, or more than MessagesPerMinute;
//   - failure-burst: more than FailuresPerMinute messages fail
//     verification or opening in a minute;
//   - refusal-burst: more than RefusalsPerMinute permission refusals and
//     failed authentications in a minute;
//   - unknown-sender: a machine the policy does not list acts, or a
//     message is refused because its sender is unknown;
//   - new-recipient: a flow delivers to a recipient never seen for it;
//   - outside-hours: a flow is active outside its declared hours.
//
// Thresholds come from the policy's monitoring section
// (policy.Monitoring); a zero threshold disables its rule.
package monitor

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"phix.dev/phix/audit"
	"phix.dev/phix/policy"
)

// Rules, the stable names alerts carry.
const (
	RuleSenderRate    = "sender-rate"
	RuleFailureBurst  = "failure-burst"
	RuleRefusalBurst  = "refusal-burst"
	RuleUnknownSender = "unknown-sender"
	RuleNewRecipient  = "new-recipient"
	RuleOutsideHours  = "outside-hours"
)

// Alert is one anomaly.
type Alert struct {
	Rule      string    `json:"rule"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor,omitempty"` // machine concerned
	Flow      string    `json:"flow,omitempty"`  // sender -> recipient (type)
	Count     int       `json:"count,omitempty"` // events counted in the window
	Threshold float64   `json:"threshold,omitempty"`
	Detail    string    `json:"detail"`
	Record    uint64    `json:"record"` // index of the audit record that raised it
}

// Window is the length of the counting window, and of one baseline sample.
const Window = time.Minute

// Baseline tuning for sender-rate.
const (
	baselineWindows = 3   // completed windows before a baseline is trusted
	baselineWeight  = 0.3 // EWMA weight of the newest window
	minRateBurst    = 10  // a burst below this many messages is never an anomaly
)

// Config configures a [Monitor].
type Config struct {
	// Policy gives the thresholds, the known machines, the declared flows
	// and their hours. Nil monitors metrics only, with the rules that
	// need no threshold learning what is normal.
	Policy *policy.Policy

	// Alert receives each alert, for instance to publish it on
	// subjects.Alerts. It must not block. Nil drops them (they are still
	// logged and counted).
	Alert func(Alert)

	// Logger receives one Warn event per alert. Nil discards.
	Logger *slog.Logger

	// Registerer receives the metrics; nil means a new registry, served
	// by [Monitor.Handler].
	Registerer prometheus.Registerer

	// Extra collectors to register, such as keys.VaultCalls.
	Collectors []prometheus.Collector

	// Authorize, if set, decides whether a request may read the metrics;
	// refused requests get 403. Nil allows every request that reaches
	// the handler.
	Authorize func(*http.Request) bool
}

// Monitor evaluates anomaly rules over audit records. Its methods are
// safe for concurrent use.
type Monitor struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	gatherer prometheus.Gatherer

	mu sync.Mutex // guards everything below
	// pol is the policy in force; nil in metrics-only mode.
	pol        *policy.Policy
	window     time.Time // start of the current window
	failures   int
	refusals   int
	fired      map[string]bool      // rule/key alerts raised in this window
	rates      map[string]*rate     // by sender
	recipients map[string]bool      // sender/type/recipient seen or declared
	published  map[string]time.Time // message ID/recipient -> publish time, for latency
	alerts     []Alert              // every alert raised, oldest first, bounded
}

// rate is one sender's publish counts.
type rate struct {
	count    int     // in the current window
	baseline float64 // EWMA of completed windows
	windows  int     // completed windows seen
}

// maxKept bounds the alerts and publish times a Monitor remembers.
const maxKept = 10000

// New returns a monitor. It registers its metrics (and cfg.Collectors)
// with cfg.Registerer, or with a registry of its own.
func New(cfg Config) (*Monitor, error) {
	mon := &Monitor{cfg: cfg, log: cfg.Logger, m: newMetrics()}
	if mon.log == nil {
		mon.log = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, mon.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		mon.gatherer = g
	}
	for _, c := range append(mon.m.collectors(), cfg.Collectors...) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	mon.SetPolicy(cfg.Policy)
	return mon, nil
}

// SetPolicy replaces the policy whose thresholds, machines, flows and
// hours the monitor applies. What was learnt about baselines is kept.
func (mon *Monitor) SetPolicy(p *policy.Policy) {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	mon.pol = p
	if mon.rates == nil {
		mon.rates, mon.fired, mon.published = map[string]*rate{}, map[string]bool{}, map[string]time.Time{}
		mon.recipients = map[string]bool{}
	}
	if p == nil {
		return
	}
	for _, f := range p.Flows {
		for _, to := range f.To {
			for _, typ := range f.Types {
				mon.recipients[f.From+"/"+typ+"/"+to] = true
			}
		}
	}
}

// Handler serves the metrics in the Prometheus text format, for
// GET /metrics. Health and readiness are served by the broker's
// monitoring endpoint, which passes other paths to this handler.
func (mon *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	if mon.gatherer != nil {
		metrics := promhttp.HandlerFor(mon.gatherer, promhttp.HandlerOpts{})
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			if mon.cfg.Authorize != nil && !mon.cfg.Authorize(r) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			metrics.ServeHTTP(w, r)
		})
	}
	return mux
}

// Alerts returns the alerts raised so far, oldest first (at most the
// last 10,000).
func (mon *Monitor) Alerts() []Alert {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	return slices.Clone(mon.alerts)
}

// Observe updates the metrics with rec and evaluates the rules; it fits
// broker.AuditConfig.OnRecord. Alerts it raises are handed to
// Config.Alert outside the monitor's lock.
func (mon *Monitor) Observe(rec audit.Record) {
	mon.count(rec)
	mon.mu.Lock()
	raised := mon.evaluateLocked(rec)
	mon.alerts = append(mon.alerts, raised...)
	if n := len(mon.alerts); n > maxKept {
		mon.alerts = slices.Delete(mon.alerts, 0, n-maxKept)
	}
	mon.mu.Unlock()
	for _, a := range raised {
		mon.m.alerts.WithLabelValues(a.Rule).Inc()
		mon.log.LogAttrs(context.Background(), slog.LevelWarn, "anomaly alert",
			slog.String("rule", a.Rule), slog.String("actor", a.Actor),
			slog.String("flow", a.Flow), slog.Int("count", a.Count), slog.String("detail", a.Detail))
		if mon.cfg.Alert != nil {
			mon.cfg.Alert(a)
		}
	}
}

// count updates the metrics for rec.
func (mon *Monitor) count(rec audit.Record) {
	mon.m.records.WithLabelValues(string(rec.Kind)).Inc()
	switch rec.Kind {
	case audit.KindPublish:
		mon.m.publishes.WithLabelValues(rec.Actor, string(rec.Outcome)).Inc()
		if rec.Outcome == audit.OutcomeFailed {
			mon.m.failures.WithLabelValues("publish-failed").Inc()
		}
	case audit.KindDelivery:
		mon.m.deliveries.WithLabelValues(rec.Actor).Inc()
	case audit.KindOpen:
		mon.m.opens.WithLabelValues(rec.Actor, strconv.FormatBool(rec.KeyCached)).Inc()
	case audit.KindQuarantine:
		mon.m.failures.WithLabelValues(rec.Reason).Inc()
	case audit.KindPermissionRefusal, audit.KindAuthFailure:
		mon.m.failures.WithLabelValues(string(rec.Kind)).Inc()
	}
}

// thresholds returns the policy's monitoring section, zero without one.
func (mon *Monitor) thresholds() policy.Monitoring {
	if mon.pol == nil {
		return policy.Monitoring{}
	}
	return mon.pol.Monitoring
}
