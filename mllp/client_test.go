package mllp_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"phix.dev/phix/hl7"
	"phix.dev/phix/mllp"
)

func newClient(t testing.TB, cfg mllp.ClientConfig) *mllp.Client {
	t.Helper()
	c, err := mllp.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientSend(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
	c := newClient(t, mllp.ClientConfig{Addr: ts.addr})
	ctx := ctxTimeout(t, 10*time.Second)
	for _, f := range []string{"39-adt-a01.hl7", "41-oru-r01.hl7", "17-large-obx-base64.hl7", "25-ack-build-v251.hl7"} {
		ack, err := c.Send(ctx, loadCase(t, f))
		if err != nil || !ack.Code.Accepted() {
			t.Fatalf("Send(%s) = %v, %v; want accepted", f, ack, err)
		}
	}
	if n := len(rec.got()); n != 4 {
		t.Errorf("server got %d messages, want 4", n)
	}
	if ts.srv.Stats().Connections != 1 {
		t.Errorf("connections = %d, want 1 reused", ts.srv.Stats().Connections)
	}
}

func TestClientNack(t *testing.T) {
	ts := startServer(t, mllp.ServerConfig{Handler: (&recorder{}).handle})
	c := newClient(t, mllp.ClientConfig{Addr: ts.addr})
	_, err := c.Send(ctxTimeout(t, 10*time.Second), loadCase(t, "18-dtm-timezone.hl7"))
	var nack *mllp.NackError
	if !errors.As(err, &nack) || nack.Code != "AE" || nack.ControlID != "DTM0000018" || !slices.Equal(nack.Errors, []string{"102"}) {
		t.Fatalf("Send(case 18) = %v, want NackError AE for DTM0000018 with code 102", err)
	}
}

// fakeReceiver accepts one connection at a time and answers each frame
// with reply(frame), which returns the ACK frames to send.
func fakeReceiver(t testing.TB, reply func(msg *hl7.Message) [][]byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r, w := mllp.NewReader(conn, 0), mllp.NewWriter(conn)
				for {
					raw, err := r.ReadFrame()
					if err != nil {
						return
					}
					m, _ := hl7.Parse(raw)
					for _, a := range reply(m) {
						w.WriteFrame(a)
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func ackFor(m *hl7.Message, id string) []byte {
	a, _ := hl7.Ack(m, nil)
	m2, _ := hl7.Parse(a)
	return []byte(string(a[:len(a)-len(m2.Raw("MSA-2"))-1]) + id + "\r")
}

func TestClientSkipsStaleAcks(t *testing.T) {
	addr := fakeReceiver(t, func(m *hl7.Message) [][]byte {
		return [][]byte{ackFor(m, "SOMEONE-ELSE"), ackFor(m, m.ControlID())}
	})
	c := newClient(t, mllp.ClientConfig{Addr: addr})
	ack, err := c.Send(ctxTimeout(t, 10*time.Second), loadCase(t, "39-adt-a01.hl7"))
	if err != nil || ack.ControlID != "ADT0000101" {
		t.Fatalf("Send = %v, %v; want the ACK for ADT0000101", ack, err)
	}
}

func TestClientTimeout(t *testing.T) {
	addr := fakeReceiver(t, func(*hl7.Message) [][]byte { return nil })
	c := newClient(t, mllp.ClientConfig{Addr: addr})
	start := time.Now()
	_, err := c.Send(ctxTimeout(t, 200*time.Millisecond), loadCase(t, "39-adt-a01.hl7"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("Send to a silent receiver = %v after %v, want %v soon", err, time.Since(start), context.DeadlineExceeded)
	}
}

// TestClientReconnects checks that a connection the receiver closed while
// idle is replaced without failing the next message.
func TestClientReconnects(t *testing.T) {
	ts := startServer(t, mllp.ServerConfig{Handler: (&recorder{}).handle, IdleTimeout: 50 * time.Millisecond})
	c := newClient(t, mllp.ClientConfig{Addr: ts.addr})
	ctx := ctxTimeout(t, 10*time.Second)
	msg := loadCase(t, "39-adt-a01.hl7")
	if _, err := c.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server closes the idle connection
	if _, err := c.Send(ctx, msg); err != nil {
		t.Fatalf("Send after the server closed the connection = %v, want success", err)
	}
	if n := ts.srv.Stats().Connections; n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestClientRefusesUnsendable(t *testing.T) {
	c := newClient(t, mllp.ClientConfig{Addr: "127.0.0.1:1"})
	ctx := ctxTimeout(t, time.Second)
	for _, msg := range []string{"not hl7", "MSH|^~\\&|A|B|C|D|20250101||ADT^A01||P|2.5.1\r"} {
		if _, err := c.Send(ctx, []byte(msg)); err == nil {
			t.Errorf("Send(%q) = nil error, want refusal", msg)
		}
	}
	if _, err := mllp.NewClient(mllp.ClientConfig{}); err == nil {
		t.Error("NewClient without address = nil error, want error")
	}
}
