package producer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"phix.dev/phix/keys"
)

func localProvider(t *testing.T, names ...string) keys.Provider {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := keys.GenerateLocal(filepath.Join(dir, n), filepath.Join(dir, "directory"), n); err != nil {
			t.Fatalf("GenerateLocal(%s): %v", n, err)
		}
	}
	kp, err := keys.OpenLocal(filepath.Join(dir, names[0]), filepath.Join(dir, "directory"), names[0])
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	return kp
}

func TestKeyRingReusesWithinLimits(t *testing.T) {
	kp := localProvider(t, "lab-feed", "ehr-ingest", "billing")
	now := time.Unix(1_000_000, 0)
	cfg, err := Config{KeyMessages: 3, KeyBytes: 100, KeyAge: time.Minute, Now: func() time.Time { return now }}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ehr := []string{"ehr-ingest"}

	tests := []struct {
		name       string
		recipients []string
		size       int
		advance    time.Duration
		wantNew    bool
	}{
		{"first message gets a fresh key", ehr, 10, 0, true},
		{"second message reuses it", ehr, 10, 0, false},
		{"another recipient set never shares it", []string{"billing", "ehr-ingest"}, 10, 0, true},
		{"third message reuses it", ehr, 10, 0, false},
		{"fourth message exceeds the message limit", ehr, 10, 0, true},
		{"a message over the byte limit gets a fresh key", ehr, 95, 0, true},
		{"after the age limit a fresh key", ehr, 1, time.Minute, true},
	}
	r := newKeyRing(kp, cfg)
	var last *dataKey
	for _, tc := range tests {
		now = now.Add(tc.advance)
		k, err := r.take(ctx, tc.recipients, tc.size)
		if err != nil {
			t.Fatalf("%s: take: %v", tc.name, err)
		}
		gotNew := last == nil || k.dk.ID() != last.dk.ID()
		if gotNew != tc.wantNew {
			t.Errorf("%s: fresh key = %v, want %v", tc.name, gotNew, tc.wantNew)
		}
		for _, rcpt := range tc.recipients {
			if len(k.wrapped[rcpt]) == 0 {
				t.Errorf("%s: no data key wrapped for %s", tc.name, rcpt)
			}
		}
		if len(tc.recipients) == 1 {
			last = k
		}
	}
}

func TestKeyRingWithoutReuse(t *testing.T) {
	kp := localProvider(t, "lab-feed", "ehr-ingest")
	cfg, _ := Config{KeyMessages: -1}.withDefaults()
	r := newKeyRing(kp, cfg)
	a, err := r.take(context.Background(), []string{"ehr-ingest"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.take(context.Background(), []string{"ehr-ingest"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.dk.ID() == b.dk.ID() || r.issuedKeys() != 2 {
		t.Errorf("with reuse disabled: ids %s, %s, issued %d; want two distinct keys", a.dk.ID(), b.dk.ID(), r.issuedKeys())
	}
}

func TestKeyRingRefusesUnknownRecipient(t *testing.T) {
	kp := localProvider(t, "lab-feed")
	cfg, _ := Config{}.withDefaults()
	if _, err := newKeyRing(kp, cfg).take(context.Background(), []string{"nobody"}, 1); err == nil {
		t.Fatal("take for an unknown recipient succeeded, want error")
	}
}
