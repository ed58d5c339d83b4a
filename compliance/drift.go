package compliance

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"phix.dev/phix/broker"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

// maxEnforcedSize bounds the /v1/enforced response, in bytes.
const maxEnforcedSize = 8 << 20

// FetchEnforced reads what the broker at monitorURL enforces, from its
// /v1/enforced endpoint, authenticating with tc (an auditor's client
// configuration: only auditors may read it).
func FetchEnforced(ctx context.Context, monitorURL string, tc *tls.Config) (*broker.Enforced, error) {
	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, monitorURL+"/v1/enforced", nil)
	if err != nil {
		return nil, fmt.Errorf("compliance: %v", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("compliance: reading enforced policy: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxEnforcedSize))
	if err != nil {
		return nil, fmt.Errorf("compliance: reading enforced policy: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("compliance: reading enforced policy: %s: %s",
			resp.Status, strings.TrimSpace(string(body)))
	}
	var e broker.Enforced
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("compliance: enforced policy: %v", err)
	}
	return &e, nil
}

// Drift lists every difference between what p derives and what the broker
// enforces, one sentence each; none means the broker enforces p exactly.
// Inbox consumers that no machine may read any more (kept so that a
// machine let back in resumes where it stopped) are not drift.
func Drift(p *policy.Policy, e *broker.Enforced) []string {
	var out []string
	out = append(out, userDrift(p.BrokerUsers(), e.Users)...)
	out = append(out, consumerDrift(p.InboxConsumers(), e.Consumers)...)
	if got, want := e.IdleTimeout, p.Sessions.IdleTimeout; got != want {
		out = append(out, fmt.Sprintf("idle timeout is %s, policy says %s", got, want))
	}
	want := map[string]policy.Duration{
		subjects.MessageStream:    p.Retention.Messages,
		subjects.QuarantineStream: p.Retention.Quarantine,
	}
	for _, s := range e.Streams {
		if w, ok := want[s.Name]; ok && s.MaxAge != w {
			out = append(out, fmt.Sprintf("stream %s keeps messages for %s, policy says %s",
				s.Name, s.MaxAge, w))
		}
	}
	return out
}

func userDrift(want, got []policy.BrokerUser) []string {
	var out []string
	byName := make(map[string]policy.BrokerUser)
	for _, u := range got {
		byName[u.Machine] = u
	}
	for _, w := range want {
		g, ok := byName[w.Machine]
		delete(byName, w.Machine)
		if !ok {
			out = append(out, fmt.Sprintf("machine %s may not connect, policy lets it", w.Machine))
			continue
		}
		out = append(out, listDrift(w.Machine, "publish", w.Publish, g.Publish)...)
		out = append(out, listDrift(w.Machine, "subscribe", w.Subscribe, g.Subscribe)...)
	}
	for _, g := range sortedKeys(byName) {
		out = append(out, fmt.Sprintf("machine %s may connect, policy does not list it "+
			"or revoked it", g))
	}
	return out
}

// listDrift reports subjects granted but not in the policy, and subjects
// in the policy but not granted.
func listDrift(machine, verb string, want, got []string) []string {
	var out []string
	for _, s := range got {
		if !slices.Contains(want, s) {
			out = append(out, fmt.Sprintf("machine %s may %s %s, policy does not allow it",
				machine, verb, s))
		}
	}
	for _, s := range want {
		if !slices.Contains(got, s) {
			out = append(out, fmt.Sprintf("machine %s may not %s %s, policy allows it",
				machine, verb, s))
		}
	}
	return out
}

func consumerDrift(want, got []policy.InboxConsumer) []string {
	var out []string
	byName := make(map[string]policy.InboxConsumer)
	for _, c := range got {
		byName[c.Durable] = c
	}
	for _, w := range want {
		g, ok := byName[w.Durable]
		if !ok {
			out = append(out, fmt.Sprintf("inbox consumer %s is missing", w.Durable))
			continue
		}
		if !slices.Equal(w.Filters, g.Filters) {
			out = append(out, fmt.Sprintf("inbox consumer %s delivers %s, policy says %s",
				w.Durable, strings.Join(g.Filters, " "), strings.Join(w.Filters, " ")))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
