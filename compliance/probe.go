package compliance

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// probeTimeout bounds each connection attempt of a probe.
const probeTimeout = 5 * time.Second

// listener is one network endpoint to probe: the broker's client port
// (NATS, TLS first) or its monitoring port (HTTPS).
type listener struct {
	name string
	addr string // host:port
	// accepted returns nil if a client with tc can use the endpoint.
	accepted func(ctx context.Context, tc *tls.Config) error
	// plaintext returns nil if a client without TLS can use it.
	plaintext func(ctx context.Context) error
}

func natsListener(clientURL string) (*listener, error) {
	u, err := url.Parse(clientURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client URL %q: not host:port", clientURL)
	}
	addr := u.Host
	return &listener{
		name:      "client port " + addr,
		addr:      addr,
		accepted:  func(ctx context.Context, tc *tls.Config) error { return natsTLS(ctx, addr, tc) },
		plaintext: func(ctx context.Context) error { return natsPlain(ctx, addr) },
	}, nil
}

func monitorListener(monitorURL string) (*listener, error) {
	u, err := url.Parse(monitorURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("monitor URL %q: not host:port", monitorURL)
	}
	return &listener{
		name: "monitoring port " + u.Host,
		addr: u.Host,
		accepted: func(ctx context.Context, tc *tls.Config) error {
			return httpGet(ctx, "https://"+u.Host+"/healthz", tc)
		},
		plaintext: func(ctx context.Context) error {
			return httpGet(ctx, "http://"+u.Host+"/healthz", nil)
		},
	}, nil
}

// natsTLS connects with tc, TLS first, and succeeds only if the server
// then sends its INFO line: in TLS 1.3 a refused client certificate
// shows only when the client first reads.
func natsTLS(ctx context.Context, addr string, tc *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout}, Config: withServerName(tc, addr)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(probeTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("unexpected greeting %.20q", line)
	}
	if v := conn.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		return fmt.Errorf("negotiated %s", tls.VersionName(v))
	}
	return nil
}

// natsPlain speaks NATS in plaintext and succeeds only if the server
// answers PING with PONG. Any byte the server sends before failing is
// reported, since a TLS-first server sends none.
func natsPlain(ctx context.Context, addr string) error {
	var d net.Dialer
	d.Timeout = probeTimeout
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(conn, "CONNECT {\"verbose\":false}\r\nPING\r\n"); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, "PONG") {
			return nil
		}
		if strings.HasPrefix(line, "INFO") {
			return errPlaintextInfo
		}
		if err != nil {
			return err
		}
	}
}

// errPlaintextInfo means the server refused a plaintext client but sent
// its INFO line in the clear first.
var errPlaintextInfo = fmt.Errorf("server sent INFO in plaintext")

func httpGet(ctx context.Context, u string, tc *tls.Config) error {
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: probeTimeout, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	if resp.TLS != nil && resp.TLS.Version != tls.VersionTLS13 {
		return fmt.Errorf("negotiated %s", tls.VersionName(resp.TLS.Version))
	}
	return nil
}

func withServerName(tc *tls.Config, addr string) *tls.Config {
	c := tc.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return c
}

// variants returns the client configurations a listener must refuse,
// derived from the working configuration good.
func variants(good *tls.Config, machine string) (map[string]*tls.Config, error) {
	tls12 := good.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	noCert := good.Clone()
	noCert.Certificates, noCert.GetClientCertificate = nil, nil

	stranger, err := strangerCert(machine)
	if err != nil {
		return nil, err
	}
	unknownCA := good.Clone()
	unknownCA.Certificates = nil
	unknownCA.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return stranger, nil
	}
	return map[string]*tls.Config{
		"a TLS 1.2 client":                 tls12,
		"a client without certificate":     noCert,
		"a certificate from an unknown CA": unknownCA,
	}, nil
}

// strangerCert returns a self-signed certificate naming machine, as an
// impostor would present: right name, wrong issuer.
func strangerCert(machine string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: machine, Organization: []string{"phix"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
