package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"phix.dev/phix/internal/subjects"
)

// BrokerTLS returns the broker's TLS configuration for data folder dir:
// TLS 1.3 only, and every client must present a certificate from the
// development CA whose common name is a valid machine name. The server
// certificate is read from disk at each handshake when it has changed,
// so a renewal by [Init] needs no restart.
//
// Session tickets are disabled so that every connection verifies the
// client certificate afresh, rather than resuming a session made with a
// certificate that has since expired.
func BrokerTLS(dir string) (*tls.Config, error) {
	pool, err := loadPool(filepath.Join(dir, caDir, caCertFile))
	if err != nil {
		return nil, err
	}
	kp := newKeyPair(filepath.Join(dir, brokerDir, serverCertFile),
		filepath.Join(dir, brokerDir, serverKeyFile))
	if _, err := kp.load(); err != nil {
		return nil, err
	}

	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.load()
		},
		VerifyConnection:       verifyMachine,
		SessionTicketsDisabled: true,
	}, nil
}

// ensureBroker creates or renews the broker certificate in dir.
func ensureBroker(ca *authority, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return ensureLeaf(ca, filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile),
		serverProfile())
}

// verifyMachine refuses a client whose verified certificate does not
// name a machine, such as the broker's own certificate, so that the
// common name can be used as the broker user name as it is.
func verifyMachine(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("identity: no client certificate")
	}
	if !subjects.ValidName(cs.PeerCertificates[0].Subject.CommonName) {
		return errors.New("identity: client certificate does not name a machine")
	}
	return nil
}
