package cli

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"phix.dev/phix/audit"
	"phix.dev/phix/broker"
	"phix.dev/phix/keys"
	"phix.dev/phix/monitor"
	"phix.dev/phix/policy"
)

// monitoring ties the anomaly monitor to a broker that is created after
// it: alerts go out through the broker once it exists.
type monitoring struct {
	mon     *monitor.Monitor
	polPath string

	mu sync.Mutex // guards b and pol
	b  *broker.Broker
	// pol is the policy in force, for authorizing metric reads.
	pol *policy.Policy
}

// newMonitoring returns the monitor for `phix up`: thresholds from pol,
// metrics (with the Vault call counter) readable by auditors on the
// monitoring endpoint, alerts logged, counted and published on
// subjects.Alerts. A policy change in the audit trail reloads the
// thresholds from polPath.
func newMonitoring(e *env, pol *policy.Policy, polPath string) (*monitoring, error) {
	m := &monitoring{pol: pol, polPath: polPath}
	mon, err := monitor.New(monitor.Config{
		Policy:     pol,
		Alert:      m.publish,
		Logger:     e.log,
		Collectors: []prometheus.Collector{keys.VaultCalls},
		Authorize:  m.auditorOnly,
	})
	if err != nil {
		return nil, err
	}
	m.mon = mon
	return m, nil
}

// use sends alerts through b from now on.
func (m *monitoring) use(b *broker.Broker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b = b
}

func (m *monitoring) publish(a monitor.Alert) {
	m.mu.Lock()
	b := m.b
	m.mu.Unlock()
	if b == nil {
		return
	}
	data, _ := json.Marshal(a)
	b.PublishAlert(data)
}

// observe feeds the monitor; it fits broker.AuditConfig.OnRecord.
func (m *monitoring) observe(rec audit.Record) {
	m.mon.Observe(rec)
	if rec.Kind == audit.KindPolicyChange && m.polPath != "" {
		go m.reload()
	}
}

func (m *monitoring) reload() {
	p, err := policy.Load(m.polPath)
	if err != nil {
		return // the broker refused it too, and keeps the old one
	}
	m.mu.Lock()
	m.pol = p
	m.mu.Unlock()
	m.mon.SetPolicy(p)
}

func (m *monitoring) auditorOnly(r *http.Request) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pol != nil && m.pol.IsAuditor(broker.PeerMachine(r))
}
