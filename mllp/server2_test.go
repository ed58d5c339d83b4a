package mllp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/hl7"
	"phix.dev/phix/mllp"
)

// wantAck is an acknowledgement a case must get.
type wantAck struct {
	code, id string
	err2     string // ERR-2, when the ACK reports an error location
	err8     string // ERR-8, when the ACK reports a reason
	prefix   string // how the raw ACK must start, for MSH-2 echoes
}

// TestEveryCaseOverMLLP sends every HL7 case to a server over TCP and
// checks each acknowledgement and that exactly the accepted messages
// reached the handler, byte for byte.
func TestEveryCaseOverMLLP(t *testing.T) {
	aa := func(id string) []wantAck { return []wantAck{{code: "AA", id: id}} }
	tests := []struct {
		file string
		acks []wantAck
	}{
		{"01-segterm-lf.hl7", aa("SEP0000001")},
		{"02-segterm-crlf.hl7", aa("SEP0000002")},
		{"04-empty-trailing-segments.hl7", aa("SEP0000004")},
		{"05-msh2-custom-delims.hl7", []wantAck{{code: "AA", id: "DLM0000005", prefix: "MSH|@~\\&|BROKER|HIE|LABSYS|NORTHLAB|"}}},
		{"07-msh2-three-chars.hl7", []wantAck{{code: "AA", id: "ENC0000007", prefix: "MSH|^~&|"}}},
		{"08-escape-basic.hl7", aa("ESC0000008")},
		{"10-repetition.hl7", aa("REP0000010")},
		{"11-null-empty-trailing-fields.hl7", aa("NUL0000011")},
		{"12-z-segment.hl7", aa("ZSG0000012")},
		{"14-msh18-latin1.hl7", aa("CHS0000014")},
		{"16-batch-fhs-bhs.hl7", []wantAck{{code: "AR", err8: "FHS batch files not accepted on MLLP endpoint"}}},
		{"17-large-obx-base64.hl7", aa("BIG0000017")},
		{"18-dtm-timezone.hl7", []wantAck{{code: "AE", id: "DTM0000018", err2: "OBR^1^7"}}},
		{"20-mllp-split-reads.hl7", aa("MLP0000020")},
		{"21-mllp-two-frames-one-read.hl7", append(aa("MLP0000211"), aa("MLP0000212")...)},
		{"23-mllp-junk-and-trailing-lf.hl7", append(aa("MLP0000231"), aa("MLP0000232")...)},
		{"25-ack-build-v251.hl7", []wantAck{{code: "CA", id: "ADT0000077", prefix: "MSH|^~\\&|BROKER|HIE|REGADT|GENHOSP|"}}},
		{"39-adt-a01.hl7", aa("ADT0000101")},
		{"40-adt-a08.hl7", aa("ADT0000102")},
		{"41-oru-r01.hl7", aa("LAB0000103")},
		{"42-orm-o01.hl7", aa("ORD0000104")},
		{"43-siu-s12.hl7", aa("SCH0000105")},
		{"44-mdm-t02.hl7", aa("DOC0000106")},
	}
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".hl7"), func(t *testing.T) {
			raw := loadCase(t, tt.file)
			stream := raw
			if !bytes.Contains(raw, []byte{mllp.StartBlock}) {
				stream = frame(raw)
			}
			before := len(rec.got())
			c := dial(t, ts.addr)
			if _, err := c.Write(stream); err != nil {
				t.Fatal(err)
			}
			r := mllp.NewReader(c, 0)
			var accepted int
			for _, w := range tt.acks {
				a := readAck(t, r, c)
				checkAckDetail(t, a, w)
				if w.code == "AA" || w.code == "CA" {
					accepted++
				}
			}
			payloads, _ := readAll(t, mllp.NewReader(bytes.NewReader(stream), 0))
			got := rec.got()[before:]
			if len(got) != accepted {
				t.Fatalf("handler got %d messages, want %d", len(got), accepted)
			}
			for i := range got {
				if !bytes.Equal(got[i], payloads[i]) {
					t.Errorf("handler message %d differs from the bytes sent", i)
				}
			}
		})
	}
}

func checkAckDetail(t testing.TB, a *hl7.Message, w wantAck) {
	t.Helper()
	checkAck(t, a, w.code, w.id)
	if w.err2 != "" && a.Raw("ERR-2") != w.err2 {
		t.Errorf("ack ERR-2 = %q, want %q", a.Raw("ERR-2"), w.err2)
	}
	if w.err8 != "" && a.Get("ERR-8") != w.err8 {
		t.Errorf("ack ERR-8 = %q, want %q", a.Get("ERR-8"), w.err8)
	}
	if w.prefix != "" && !strings.HasPrefix(string(a.Bytes()), w.prefix) {
		t.Errorf("ack = %q, want it to start %q", a.Bytes(), w.prefix)
	}
	if w.code != "AA" && w.code != "CA" && len(a.All("ERR")) == 0 {
		t.Errorf("refusing ack has no ERR segment")
	}
}

// TestSizeLimit checks case 17 against a limit below its size: AR with
// 'message exceeds N bytes' and its control ID, no handler call, and the
// connection still serves the next message.
func TestSizeLimit(t *testing.T) {
	big := loadCase(t, "17-large-obx-base64.hl7")
	small := loadCase(t, "39-adt-a01.hl7")
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle, MaxMessageSize: 65536})
	c := dial(t, ts.addr)
	r := mllp.NewReader(c, 0)
	if _, err := c.Write(append(frame(big), frame(small)...)); err != nil {
		t.Fatal(err)
	}
	checkAckDetail(t, readAck(t, r, c), wantAck{code: "AR", id: "BIG0000017", err8: "message exceeds 65536 bytes"})
	checkAck(t, readAck(t, r, c), "AA", "ADT0000101")
	if got := rec.got(); len(got) != 1 || !bytes.Equal(got[0], small) {
		t.Errorf("handler got %d messages, want only the small one", len(got))
	}
}

func TestHandlerOutcomes(t *testing.T) {
	orig := loadCase(t, "39-adt-a01.hl7")
	enh := loadCase(t, "25-ack-build-v251.hl7")
	tests := []struct {
		name string
		err  error
		msg  []byte
		want wantAck
	}{
		{"store failure, original mode", errors.New("jetstream: no responders"), orig, wantAck{code: "AR", id: "ADT0000101"}},
		{"store failure, enhanced mode", errors.New("jetstream: no responders"), enh, wantAck{code: "CE", id: "ADT0000077"}},
		{"content error from handler", &hl7.Error{Code: hl7.CodeTableValue, Location: hl7.Location{Segment: "PV1", Field: 2}, Reason: "unknown patient class"}, orig,
			wantAck{code: "AE", id: "ADT0000101", err2: "PV1^1^2", err8: "unknown patient class"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.err}
			ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
			c := dial(t, ts.addr)
			c.Write(frame(tt.msg))
			a := readAck(t, mllp.NewReader(c, 0), c)
			checkAckDetail(t, a, tt.want)
			if strings.Contains(string(a.Bytes()), "jetstream") {
				t.Errorf("ack quotes the internal error: %q", a.Bytes())
			}
		})
	}
}

func TestHandlerPanicIsRefused(t *testing.T) {
	ts := startServer(t, mllp.ServerConfig{Handler: func(context.Context, []byte, *hl7.Message) error { panic("boom") }})
	c := dial(t, ts.addr)
	c.Write(frame(loadCase(t, "39-adt-a01.hl7")))
	checkAck(t, readAck(t, mllp.NewReader(c, 0), c), "AR", "ADT0000101")
}

func TestStrictServer(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle, Strict: true})
	c := dial(t, ts.addr)
	r := mllp.NewReader(c, 0)
	for _, tt := range []struct{ file, id, reason string }{
		{"01-segterm-lf.hl7", "SEP0000001", "no segment terminator 0x0D found"},
		{"07-msh2-three-chars.hl7", "ENC0000007", "MSH-2"},
	} {
		c.Write(frame(loadCase(t, tt.file)))
		a := readAck(t, r, c)
		checkAck(t, a, "AR", tt.id)
		if !strings.Contains(a.Get("ERR-8"), tt.reason) {
			t.Errorf("strict ack ERR-8 = %q, want it to mention %q", a.Get("ERR-8"), tt.reason)
		}
	}
	if n := len(rec.got()); n != 0 {
		t.Errorf("handler got %d messages, want none", n)
	}
}

// TestGracefulShutdown checks that a message being stored when the server
// is told to stop is still acknowledged, and that Serve then returns.
func TestGracefulShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ts := startServer(t, mllp.ServerConfig{Handler: func(ctx context.Context, raw []byte, m *hl7.Message) error {
		once.Do(func() { close(entered) })
		<-release
		return ctx.Err()
	}})
	c := dial(t, ts.addr)
	c.Write(frame(loadCase(t, "39-adt-a01.hl7")))
	<-entered
	ts.stop()
	time.Sleep(50 * time.Millisecond) // let shutdown begin while the handler runs
	close(release)
	r := mllp.NewReader(c, 0)
	checkAck(t, readAck(t, r, c), "AA", "ADT0000101")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Errorf("after shutdown ReadFrame = %v, want io.EOF (connection closed)", err)
	}
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, mllp.ServerConfig{Handler: (&recorder{}).handle, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, ts.addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read on an idle connection = %v, want io.EOF", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about 100ms", took)
	}
}

func TestServerConfigValidation(t *testing.T) {
	h := (&recorder{}).handle
	cert := testCert(t, "server")
	tests := []struct {
		name string
		cfg  mllp.ServerConfig
	}{
		{"no handler", mllp.ServerConfig{}},
		{"negative size", mllp.ServerConfig{Handler: h, MaxMessageSize: -1}},
		{"TLS 1.2 allowed", mllp.ServerConfig{Handler: h, TLS: &tls.Config{
			MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, Certificates: []tls.Certificate{cert}}}},
		{"client certificates optional", mllp.ServerConfig{Handler: h, TLS: &tls.Config{
			MinVersion: tls.VersionTLS13, ClientAuth: tls.VerifyClientCertIfGiven, Certificates: []tls.Certificate{cert}}}},
		{"no server certificate", mllp.ServerConfig{Handler: h, TLS: &tls.Config{
			MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert}}},
		{"unknown charset", mllp.ServerConfig{Handler: h, DefaultCharset: "EBCDIC"}},
	}
	for _, tt := range tests {
		if _, err := mllp.NewServer(tt.cfg); err == nil {
			t.Errorf("NewServer(%s) = nil error, want an error", tt.name)
		}
	}
}

// TestStatsCount checks the counters after a mix of outcomes.
func TestStatsCount(t *testing.T) {
	ts := startServer(t, mllp.ServerConfig{Handler: (&recorder{}).handle})
	c := dial(t, ts.addr)
	r := mllp.NewReader(c, 0)
	for _, f := range []string{"01-segterm-lf.hl7", "18-dtm-timezone.hl7", "16-batch-fhs-bhs.hl7", "07-msh2-three-chars.hl7"} {
		c.Write(frame(loadCase(t, f)))
		readAck(t, r, c)
	}
	st := ts.srv.Stats()
	got := fmt.Sprintf("%d %d %d %d %d %d", st.Frames, st.Accepted, st.Errored, st.Rejected,
		st.Warnings[hl7.WarnLFTerminators], st.Warnings[hl7.WarnShortEncoding])
	if want := "4 2 1 1 1 1"; got != want {
		t.Errorf("Stats frames/accepted/errored/rejected/lf/short = %s, want %s", got, want)
	}
}
