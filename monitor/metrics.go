package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series the monitor keeps. Labels are machine
// names, kinds and reason codes, all bounded by the policy.
type metrics struct {
	records    *prometheus.CounterVec   // kind
	publishes  *prometheus.CounterVec   // sender, outcome
	deliveries *prometheus.CounterVec   // recipient
	opens      *prometheus.CounterVec   // recipient, key_cached
	failures   *prometheus.CounterVec   // reason
	alerts     *prometheus.CounterVec   // rule
	latency    *prometheus.HistogramVec // stage
}

func newMetrics() *metrics {
	return &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "audit_records_total",
			Help: "Audit records stored, by kind.",
		}, []string{"kind"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "publish_total",
			Help: "Message copies published, by sender and outcome.",
		}, []string{"sender", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "delivery_total",
			Help: "Message copies acknowledged by their recipient.",
		}, []string{"recipient"}),
		opens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "open_total",
			Help: "Messages opened, by recipient and whether the data key came from a cache.",
		}, []string{"recipient", "key_cached"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "failures_total",
			Help: "Refusals and failures, by reason: quarantine reasons, " +
				"permission-refusal, auth-failure, publish-failed.",
		}, []string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phix", Name: "alerts_total",
			Help: "Anomaly alerts raised, by rule.",
		}, []string{"rule"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "phix", Name: "latency_seconds",
			Help:    "Time from publish to delivery and to opening, as recorded in the audit trail.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"stage"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.records, m.publishes, m.deliveries, m.opens, m.failures, m.alerts, m.latency}
}
