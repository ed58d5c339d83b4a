package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Timeouts of the monitoring endpoint. Requests are small; the limits
// stop a client from holding connections open.
const (
	monitorReadTimeout  = 10 * time.Second
	monitorWriteTimeout = 30 * time.Second
	monitorIdleTimeout  = 60 * time.Second
)

// monitor is the HTTPS monitoring endpoint.
type monitor struct {
	srv *http.Server
	ln  net.Listener
}

// startMonitor listens on the monitoring port and serves until Close.
func (b *Broker) startMonitor() error {
	if b.cfg.MonitorPort == 0 {
		return nil
	}
	port := b.cfg.MonitorPort
	if port == RandomPort {
		port = 0
	}
	// The same enforced settings as the client port: TLS 1.3 only and a
	// verified client certificate on every connection.
	tc := serverTLS(b.cfg.TLS)
	// HTTP/1.1 only: the endpoint serves a few small documents, and one
	// protocol is less to get wrong.
	tc.NextProtos = []string{"http/1.1"}
	ln, err := tls.Listen("tcp", net.JoinHostPort(b.cfg.Host, strconv.Itoa(port)), tc)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           b.monitorHandler(),
		ReadHeaderTimeout: monitorReadTimeout,
		ReadTimeout:       monitorReadTimeout,
		WriteTimeout:      monitorWriteTimeout,
		IdleTimeout:       monitorIdleTimeout,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	b.mon = &monitor{srv: hs, ln: ln}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.LogAttrs(context.Background(), slog.LevelError, "monitoring endpoint stopped",
				slog.String("error", err.Error()))
		}
	}()
	return nil
}

func (m *monitor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
}

// MonitorURL returns the monitoring endpoint's URL, https://host:port,
// or "" if there is none or Start has not returned yet.
func (b *Broker) MonitorURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mon == nil {
		return ""
	}
	return "https://" + b.mon.ln.Addr().String()
}

// PeerMachine returns the machine name of the client certificate that
// authenticated r on the monitoring endpoint, or "" if there is none.
// Handlers set in [Config].Monitor use it to authorize requests.
func PeerMachine(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	c := r.TLS.PeerCertificates[0]
	m := machineOf("CN=" + c.Subject.CommonName + ",O=" + certOrg)
	if m == "" || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != certOrg {
		return ""
	}
	return m
}

// monitorHandler serves the broker's own endpoints and passes anything
// else to [Config].Monitor:
//
//	GET /healthz       200 while the server runs
//	GET /readyz        200 once started and accepting clients
//	GET /v1/enforced   the [Enforced] report as JSON, to auditors only
func (b *Broker) monitorHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.running() {
			http.Error(w, "stopped", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.running() || !b.srv.Running() || !b.srv.JetStreamEnabled() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/enforced", b.serveEnforced)
	if b.cfg.Monitor != nil {
		mux.Handle("/", b.cfg.Monitor)
	}
	return mux
}

// serveEnforced reports what the broker enforces. Only auditors may read
// it: it lists every machine's permissions and live sessions.
func (b *Broker) serveEnforced(w http.ResponseWriter, r *http.Request) {
	a := b.currentAccess()
	m := PeerMachine(r)
	if a == nil || a.policy == nil || !a.policy.IsAuditor(m) {
		http.Error(w, "forbidden: auditors only", http.StatusForbidden)
		return
	}
	e, err := b.Enforced(r.Context())
	if err != nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(e)
}
