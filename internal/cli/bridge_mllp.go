package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/consumer"
	"phix.dev/phix/hl7"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/mllp"
	"phix.dev/phix/producer"
)

// hl7Type is the phix message type of HL7 v2 payloads.
const hl7Type = "hl7v2"

func newBridgeMLLP(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mllp",
		Short: "Bridge HL7 v2 feeds over MLLP into and out of phix",
		Long: `Bridge HL7 v2 interfaces to phix. "in" listens for MLLP connections and
publishes each message, sealed, to the named recipients; "out" receives a
machine's HL7 v2 messages and forwards them to a downstream MLLP receiver.
Messages are acknowledged only once safely passed on.`,
	}
	cmd.AddCommand(newBridgeMLLPIn(e), newBridgeMLLPOut(e))
	return cmd
}

type mllpInFlags struct {
	identity, to, listen, url, charset string
	allow                              string
	certFile, keyFile, clientCAFile    string
	maxSize                            int
	strict                             bool
	idle                               time.Duration
}

func newBridgeMLLPIn(e *env) *cobra.Command {
	var f mllpInFlags
	cmd := &cobra.Command{
		Use:   "in --identity DIR --to NAME[,NAME...] --listen ADDR",
		Short: "Receive HL7 v2 over MLLP and publish it to phix",
		Long: `Listen for MLLP connections and publish every HL7 v2 message received,
byte for byte, as the machine whose identity folder is given, to each
recipient. A message is acknowledged AA (CA in enhanced mode) only once the
broker has stored every recipient's copy; messages that cannot be parsed,
fail validation or cannot be stored get AE or AR with an ERR segment.
Batch files (FHS) are refused. With --tls-cert, --tls-key and
--tls-client-ca the listener requires TLS 1.3 and a client certificate
signed by that CA whose common name is listed in --allow (default: only
the bridge's own machine); other senders' connections are closed. Runs
until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMLLPIn(cmd.Context(), e, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.identity, "identity", "", "identity folder of the publishing machine (required)")
	fl.StringVar(&f.to, "to", "", "comma-separated recipient machine names (required)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:2575", "address to accept MLLP connections on")
	fl.StringVar(&f.url, "url", "", "broker URL (default: the one recorded by phix up)")
	fl.IntVar(&f.maxSize, "max-size", hl7.DefaultMaxSize, "largest message accepted, in bytes")
	fl.BoolVar(&f.strict, "strict", false, "refuse LF-only terminators, blank segments and short MSH-2")
	fl.StringVar(&f.charset, "charset", "", "character set of messages with an empty MSH-18, e.g. 8859/1 (default UTF-8)")
	fl.DurationVar(&f.idle, "idle-timeout", mllp.DefaultIdleTimeout, "close connections silent for this long")
	fl.StringVar(&f.certFile, "tls-cert", "", "server certificate (PEM) for MLLP over TLS")
	fl.StringVar(&f.keyFile, "tls-key", "", "server private key (PEM) for MLLP over TLS")
	fl.StringVar(&f.clientCAFile, "tls-client-ca", "", "CA (PEM) that signs the certificates of sending systems")
	fl.StringVar(&f.allow, "allow", "", "comma-separated client certificate names permitted to send over TLS (default: the bridge's own machine)")
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("to")
	return cmd
}

func runMLLPIn(ctx context.Context, e *env, f *mllpInFlags) error {
	recipients := splitList(f.to)
	if len(recipients) == 0 {
		return errors.New("--to names no recipient")
	}
	tlsConf, err := mllpServerTLS(f.certFile, f.keyFile, f.clientCAFile)
	if err != nil {
		return err
	}
	if tlsConf == nil && f.allow != "" {
		return errors.New("--allow needs --tls-cert, --tls-key and --tls-client-ca")
	}
	s, err := connect(ctx, f.identity, f.url)
	if err != nil {
		return err
	}
	defer s.close()
	p, stop, err := bridgeProducer(e, s, f.identity)
	if err != nil {
		return err
	}
	defer stop()
	if tlsConf != nil {
		tlsConf.VerifyConnection = verifyClientName(e.log.With("component", "mllp-in"),
			allowedClients(f.allow, s.machine.Name))
	}
	srv, err := mllp.NewServer(mllp.ServerConfig{
		Handler: publishHL7(e, p, recipients), Logger: e.log.With("component", "mllp-in"),
		MaxMessageSize: f.maxSize, Strict: f.strict, DefaultCharset: f.charset,
		IdleTimeout: f.idle, TLS: tlsConf,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %v", f.listen, err)
	}
	fmt.Fprintf(e.stdout, "mllp bridge listening on %s, publishing as %s to %s\n",
		ln.Addr(), s.machine.Name, strings.Join(recipients, ","))
	return srv.Serve(ctx, ln)
}

// publishHL7 returns the MLLP handler that publishes each message, as
// received, and returns once every recipient's copy is stored.
func publishHL7(e *env, p *producer.Producer, recipients []string) mllp.Handler {
	return func(ctx context.Context, raw []byte, m *hl7.Message) error {
		rc, err := p.Publish(ctx, recipients, raw,
			producer.WithType(hl7Type, contentTypes[hl7Type]),
			producer.WithSchemaID(hl7SchemaID(m)),
			producer.WithMessageID(hl7MessageID(m)))
		if err != nil {
			return err
		}
		e.log.Info("hl7 message accepted", "client", mllp.ClientName(ctx),
			"message_id", rc.MessageID, "control_id", m.ControlID(), "copies", len(rc.Copies))
		return nil
	}
}

// hl7MessageID derives the phix message ID from the sender's application,
// facility, timestamp and control ID, so a message the sender retransmits
// after a lost ACK is deduplicated by the broker rather than stored
// twice. None of these are PHI, and the ID is a digest regardless.
func hl7MessageID(m *hl7.Message) string {
	h := sha256.New()
	for _, p := range []string{"MSH-3", "MSH-4", "MSH-7", "MSH-10"} {
		v := m.Raw(p)
		fmt.Fprintf(h, "%d:%s;", len(v), v)
	}
	return "hl7-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// hl7SchemaID names the message's version and structure, such as
// "hl7v2/2.5.1/ADT_A01", for the signed header.
func hl7SchemaID(m *hl7.Message) string {
	structure := m.Get("MSH-9.3")
	if structure == "" {
		structure = m.Get("MSH-9.1") + "_" + m.Get("MSH-9.2")
	}
	return hl7Type + "/" + m.Version() + "/" + structure
}

// mllpServerTLS loads the listener's TLS 1.3 mutual-authentication
// config, or returns nil when no TLS flag is set.
func mllpServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("--tls-cert, --tls-key and --tls-client-ca go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading MLLP server certificate: %v", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{cert}, ClientCAs: pool,
	}, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

type mllpOutFlags struct {
	identity, forward, url    string
	caFile, certFile, keyFile string
	ackTimeout                time.Duration
	count                     int
}

func newBridgeMLLPOut(e *env) *cobra.Command {
	var f mllpOutFlags
	cmd := &cobra.Command{
		Use:   "out --identity DIR --forward ADDR",
		Short: "Forward a machine's HL7 v2 messages to an MLLP receiver",
		Long: `Receive the HL7 v2 messages addressed to the machine whose identity folder
is given, verify and open each, and send it byte for byte to the MLLP
receiver at ADDR. A message is acknowledged to phix only after the receiver
accepted it (AA or CA); otherwise it is offered again later and, after
repeated refusals, quarantined. With --tls-ca the connection uses TLS 1.3,
presenting --tls-cert and --tls-key when given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMLLPOut(cmd.Context(), e, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.identity, "identity", "", "identity folder of the receiving machine (required)")
	fl.StringVar(&f.forward, "forward", "", "host:port of the downstream MLLP receiver (required)")
	fl.StringVar(&f.url, "url", "", "broker URL (default: the one recorded by phix up)")
	fl.DurationVar(&f.ackTimeout, "ack-timeout", mllp.DefaultAckTimeout, "how long to wait for the receiver's ACK")
	fl.IntVar(&f.count, "count", 0, "exit after forwarding this many messages (default: run until interrupted)")
	fl.StringVar(&f.caFile, "tls-ca", "", "CA (PEM) of the receiver's certificate; enables TLS")
	fl.StringVar(&f.certFile, "tls-cert", "", "client certificate (PEM) to present over TLS")
	fl.StringVar(&f.keyFile, "tls-key", "", "client private key (PEM) to present over TLS")
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("forward")
	return cmd
}

func runMLLPOut(ctx context.Context, e *env, f *mllpOutFlags) error {
	tlsConf, err := mllpClientTLS(f.caFile, f.certFile, f.keyFile)
	if err != nil {
		return err
	}
	client, err := mllp.NewClient(mllp.ClientConfig{Addr: f.forward, TLS: tlsConf, AckTimeout: f.ackTimeout})
	if err != nil {
		return err
	}
	defer client.Close()
	s, err := connect(ctx, f.identity, f.url)
	if err != nil {
		return err
	}
	defer s.close()
	c, err := consumer.New(s.js, s.keys, consumer.Config{
		OnReject: func(r *consumer.RejectError) {
			e.log.Warn("message quarantined", "reason", r.Reason, "subject", r.Subject, "seq", r.Seq)
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "mllp bridge forwarding messages for %s to %s\n", s.machine.Name, f.forward)
	err = c.Run(ctx, f.count, forwardHL7(e, client))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// forwardHL7 returns the consumer handler that sends each HL7 v2 message
// downstream and succeeds only once the receiver accepted it. Messages of
// other types fail, so they end in quarantine rather than being dropped.
func forwardHL7(e *env, client *mllp.Client) consumer.Handler {
	return func(ctx context.Context, m *consumer.Message) error {
		if _, _, typ, _ := subjects.ParseMessage(m.Subject); typ != hl7Type {
			return fmt.Errorf("message %s is of type %q, not %s", m.ID, typ, hl7Type)
		}
		ack, err := client.Send(ctx, m.Payload)
		if err != nil {
			e.log.Warn("hl7 forward failed", "id", m.ID, "delivered", m.Delivered, "err", err)
			return err
		}
		e.log.Debug("hl7 message forwarded", "id", m.ID, "control_id", ack.ControlID, "ack", string(ack.Code))
		return nil
	}
}

// mllpClientTLS loads the forwarding connection's TLS 1.3 config, or
// returns nil for plain TCP when no CA is given.
func mllpClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		if certFile != "" || keyFile != "" {
			return nil, errors.New("--tls-cert and --tls-key need --tls-ca")
		}
		return nil, nil
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading MLLP client certificate: %v", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
