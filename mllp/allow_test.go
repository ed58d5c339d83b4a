package mllp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/hl7"
	"phix.dev/phix/mllp"
)

// TestVerifyConnectionRestrictsClients checks that a VerifyConnection in
// the server's TLS config refuses a certificate from the right CA with the
// wrong name before any message reaches the handler, and that the handler
// learns the admitted name from ClientName.
func TestVerifyConnectionRestrictsClients(t *testing.T) {
	ca := testCA(t)
	var (
		mu    sync.Mutex
		names []string
	)
	handle := func(ctx context.Context, _ []byte, _ *hl7.Message) error {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, mllp.ClientName(ctx))
		return nil
	}
	ts := startServer(t, mllp.ServerConfig{Handler: handle, TLS: &tls.Config{
		MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{testCert(t, "phix")}, ClientCAs: ca.pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.PeerCertificates[0].Subject.CommonName != "lab-feed" {
				return errors.New("client not allowed")
			}
			return nil
		},
	}})
	msg := loadCase(t, "39-adt-a01.hl7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(name string) error {
		c, _ := mllp.NewClient(mllp.ClientConfig{Addr: ts.addr, AckTimeout: 2 * time.Second,
			TLS: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.pool,
				Certificates: []tls.Certificate{testCert(t, name)}}})
		defer c.Close()
		_, err := c.Send(ctx, msg)
		return err
	}

	if err := send("lab-feed"); err != nil {
		t.Fatalf("Send as lab-feed = %v, want AA", err)
	}
	if err := send("billing"); err == nil {
		t.Error("Send as billing succeeded, want the connection refused")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"lab-feed"}; !slices.Equal(names, want) {
		t.Errorf("handler saw clients %q, want %q", names, want)
	}
}

func TestClientNameWithoutConnection(t *testing.T) {
	if got := mllp.ClientName(context.Background()); got != "" {
		t.Errorf("ClientName(Background) = %q, want \"\"", got)
	}
}
