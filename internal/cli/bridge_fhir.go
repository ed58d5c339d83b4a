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
the identity folder). No payload is ever logged.`,
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
	p, err := producer.New(s.js, s.keys, producer.Config{})
	if err != nil {
		return err
	}
	if o.clientCA == "" {
		o.clientCA = s.machine.CAFile
	}
	tlsConf, err := bridgeTLS(o.certFile, o.keyFile, o.clientCA)
	if err != nil {
		return err
	}
	h, err := fhir.NewHandler(bridgeConfig(e, o, p, recipients))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	e.log.Info("fhir bridge listening", "addr", ln.Addr().String(), "base", o.base,
		"recipients", o.to, "lenient", o.lenient)
	return serveBridge(ctx, e, ln, o.base, h, tlsConf)
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
	base = "/" + strings.Trim(base, "/")
	mux := http.NewServeMux()
	mux.Handle(base+"/", http.StripPrefix(base, h))
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
