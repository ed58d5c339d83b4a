package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/fhir"
	"phix.dev/phix/producer"
)

// Message types the FHIR bridge publishes: resources and Bundles exactly
// as received, and the bridge's own subscription event records.
const (
	fhirType      = "fhir"
	fhirEventType = "fhir-event"
)

// bridgeFHIROptions are the flags of `phix bridge fhir`.
type bridgeFHIROptions struct {
	identityDir, to, listen, url, base string
	allow                              string
	certFile, keyFile, clientCA        string
	lenient, notifications             bool
	maxBody                            int64
	maxEntries                         int
}

func newBridgeFHIR(e *env) *cobra.Command {
	var o bridgeFHIROptions
	cmd := &cobra.Command{
		Use:   "fhir --identity DIR --to NAME[,NAME...] --listen ADDR --tls-cert FILE --tls-key FILE",
		Short: "Accept FHIR R4 over HTTPS and publish it sealed to recipients",
		Long: `Serve a FHIR R4 endpoint (create, update, transaction, batch and
subscription notifications) over TLS 1.3 with client certificates. Each
request is validated against the R4 definitions and, if valid, its body is
sealed and published exactly as received, as the machine whose identity
folder is given, to every --to recipient. The response is 202 Accepted with
the phix message ID in the Phix-Message-Id header once every copy is
stored. Client certificates must chain to --client-ca (default: the CA of
the identity folder) and name, as common name, a machine listed in --allow
(default: only the bridge's own machine): a certificate names who vouches
for the data the bridge then signs. No payload is ever logged. GET
[base]/metadata returns the CapabilityStatement.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBridgeFHIR(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.identityDir, "identity", "", "identity folder of the publishing machine (required)")
	f.StringVar(&o.to, "to", "", "comma-separated recipient machine names (required)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on")
	f.StringVar(&o.base, "base", "/fhir", "path of the FHIR base URL")
	f.StringVar(&o.certFile, "tls-cert", "", "server certificate, PEM (required)")
	f.StringVar(&o.keyFile, "tls-key", "", "server private key, PEM (required)")
	f.StringVar(&o.clientCA, "client-ca", "", "CA certificates that client certificates must chain to (default: the identity's CA)")
	f.StringVar(&o.allow, "allow", "", "comma-separated client certificate names permitted to post (default: the bridge's own machine)")
	f.BoolVar(&o.lenient, "lenient", false, "accept unknown elements with a warning (they are forwarded as sent)")
	f.BoolVar(&o.notifications, "notifications", true, "accept subscription notifications and publish them as "+fhirEventType)
	f.Int64Var(&o.maxBody, "max-body", fhir.DefaultMaxBodyBytes, "largest request body in bytes")
	f.IntVar(&o.maxEntries, "max-entries", fhir.DefaultMaxBundleEntries, "most entries in one Bundle")
	f.StringVar(&o.url, "url", "", "broker URL (default: the one recorded by phix up)")
	for _, name := range []string{"identity", "to", "tls-cert", "tls-key"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

func runBridgeFHIR(ctx context.Context, e *env, o bridgeFHIROptions) error {
	recipients := splitList(o.to)
	if len(recipients) == 0 {
		return errors.New("--to names no recipient")
	}
	s, err := connect(ctx, o.identityDir, o.url)
	if err != nil {
		return err
	}
	defer s.close()
	p, stop, err := bridgeProducer(e, s, o.identityDir)
	if err != nil {
		return err
	}
	defer stop()
	if o.clientCA == "" {
		o.clientCA = s.machine.CAFile
	}
	tlsConf, err := bridgeTLS(o.certFile, o.keyFile, o.clientCA)
	if err != nil {
		return err
	}
	allow := allowedClients(o.allow, s.machine.Name)
	tlsConf.VerifyConnection = verifyClientName(e.log, allow)
	h, err := fhir.NewHandler(bridgeConfig(e, o, p, recipients))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	e.log.Info("fhir bridge listening", "addr", ln.Addr().String(), "base", o.base,
		"recipients", o.to, "allow", strings.Join(allow, ","), "lenient", o.lenient)
	return serveBridge(ctx, e, ln, o.base, requireClient(e.log, allow, h), tlsConf)
}

// bridgeProducer returns a producer that reports every publish to the
// audit stream, as `phix publish` does, and the function that flushes the
// reports; the caller defers it.
func bridgeProducer(e *env, s *session, identityDir string) (*producer.Producer, func(), error) {
	allow, err := sourceAllow(identityDir, "", s.machine.Name)
	if err != nil {
		return nil, nil, err
	}
	rep, stop, err := s.startReporter(e)
	if err != nil {
		return nil, nil, err
	}
	p, err := producer.New(s.js, s.keys, producer.Config{OnPublish: rep.OnPublish, Allow: allow,
		Registry: s.producerRegistry()})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return p, stop, nil
}

// allowedClients is the --allow list, or just the bridge's own machine
// name when the flag is empty, so that an upstream system must be given
// its own identity and listed on purpose.
func allowedClients(flag, self string) []string {
	if names := splitList(flag); len(names) > 0 {
		return names
	}
	return []string{self}
}

// verifyClientName returns a tls.Config.VerifyConnection that admits only
// client certificates whose subject common name is in allow. Every
// certificate of the deployment CA chains, but the bridge signs what it
// forwards as its own machine, so a machine such as billing must not be
// able to post through it. The refusal is a TLS alert; it is logged with
// the name, never with data.
func verifyClientName(log *slog.Logger, allow []string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		name := clientName(cs)
		if slices.Contains(allow, name) {
			return nil
		}
		log.Warn("bridge client refused", "client", name, "reason", "not in --allow")
		return fmt.Errorf("client certificate %q is not allowed to post", name)
	}
}

// clientName is the common name of the verified client certificate, or ""
// when there is none.
func clientName(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// clientNameKey is the request context key of the admitted client's
// certificate name.
type clientNameKey struct{}

// requireClient serves h only to requests whose client certificate name
// is in allow, answering others 403 with an OperationOutcome before the
// body is read. It repeats the TLS check so that the rule holds even if
// the handler is served some other way, and passes the name on in the
// request context for the publish log.
func requireClient(log *slog.Logger, allow []string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := ""
		if r.TLS != nil {
			name = clientName(*r.TLS)
		}
		if !slices.Contains(allow, name) {
			log.Warn("bridge client refused", "client", name, "reason", "not in --allow")
			w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			w.Write(fhir.OperationOutcome([]fhir.Issue{{Severity: fhir.SeverityError,
				Code: "forbidden", Diagnostics: "this client certificate may not post here"}}))
			return
		}
		ctx := context.WithValue(r.Context(), clientNameKey{}, name)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestClient is the admitted client's name, as set by [requireClient].
func requestClient(ctx context.Context) string {
	name, _ := ctx.Value(clientNameKey{}).(string)
	return name
}

// bridgeConfig wires the handler to the producer. Publish returns only
// once JetStream has stored every recipient's copy.
func bridgeConfig(e *env, o bridgeFHIROptions, p *producer.Producer, recipients []string) fhir.Config {
	cfg := fhir.Config{
		Lenient:          o.lenient,
		MaxBodyBytes:     o.maxBody,
		MaxBundleEntries: o.maxEntries,
		Publish: func(ctx context.Context, resourceType string, raw []byte) (string, error) {
			rc, err := p.Publish(ctx, recipients, raw,
				producer.WithType(fhirType, "application/fhir+json"),
				producer.WithSchemaID("http://hl7.org/fhir/StructureDefinition/"+resourceType))
			if err != nil {
				return "", err
			}
			e.log.Info("fhir message accepted", "client", requestClient(ctx),
				"message_id", rc.MessageID, "resource_type", resourceType)
			return rc.MessageID, nil
		},
		OnRequest: func(ri fhir.RequestInfo) { logBridgeRequest(e.log, ri) },
	}
	if o.notifications {
		cfg.PublishEvent = func(ctx context.Context, ev *fhir.Event) (string, error) {
			rc, err := p.Publish(ctx, recipients, fhir.MarshalEvent(ev),
				producer.WithType(fhirEventType, "application/json"),
				producer.WithSchemaID("phix.dev/fhir/event/v1"))
			if err != nil {
				return "", err
			}
			e.log.Info("fhir message accepted", "client", requestClient(ctx),
				"message_id", rc.MessageID, "resource_type", fhirEventType)
			return rc.MessageID, nil
		}
	}
	return cfg
}

// logBridgeRequest logs a request summary: never a payload, resource id or
// element value, only counts, types and the message ID.
func logBridgeRequest(log *slog.Logger, ri fhir.RequestInfo) {
	attrs := []any{
		"interaction", ri.Interaction, "resource_type", ri.ResourceType, "status", ri.Status,
		"message_id", ri.MessageID, "errors", ri.Errors, "warnings", ri.Warnings,
		"bytes", ri.Bytes, "took", ri.Duration,
	}
	if ri.Status >= 500 {
		log.Warn("fhir request not stored", append(attrs, "err", ri.Err)...)
		return
	}
	log.Debug("fhir request", attrs...)
}

// bridgeTLS is the server side of the bridge: TLS 1.3 only, and every
// client must present a certificate that chains to the client CA.
func bridgeTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading bridge certificate: %w", err)
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in client CA file %s", clientCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// serveBridge serves h under base on ln until ctx ends, then shuts down,
// letting requests in flight finish their publish. It closes ln.
func serveBridge(ctx context.Context, e *env, ln net.Listener, base string, h http.Handler, tlsConf *tls.Config) error {
	mux := http.NewServeMux()
	if base = strings.Trim(base, "/"); base == "" {
		mux.Handle("/", h)
	} else {
		// Mount the base itself too: the mux would answer a POST to it
		// with a redirect to base+"/", which clients do not follow.
		base = "/" + base
		mux.Handle(base, http.StripPrefix(base, h))
		mux.Handle(base+"/", http.StripPrefix(base, h))
	}
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      3 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdown)
	e.log.Info("fhir bridge stopped")
	return err
}
