package monitor

import (
	"fmt"
	"slices"
	"time"

	"phix.dev/phix/audit"
)

// verificationFailures are the quarantine reasons that mean a message
// failed verification or opening; a handler failure is the application's
// and is not counted.
var verificationFailures = []string{
	"malformed", "subject-mismatch", "not-recipient", "unknown-sender", "bad-signature", "open-failed",
}

// evaluateLocked applies every rule to rec and returns the alerts raised.
func (mon *Monitor) evaluateLocked(rec audit.Record) []Alert {
	mon.rollLocked(rec.Time)
	var out []Alert
	raise := func(a Alert, key string) {
		k := a.Rule + "/" + key
		if mon.fired[k] {
			return // once per rule and key per window
		}
		mon.fired[k] = true
		a.Time, a.Record = rec.Time, rec.Index
		out = append(out, a)
	}
	if a, ok := mon.unknownLocked(rec); ok {
		raise(a, a.Actor)
	}
	switch rec.Kind {
	case audit.KindPublish:
		if rec.Outcome == audit.OutcomeOK {
			mon.publishLocked(rec, raise)
		}
	case audit.KindDelivery, audit.KindOpen:
		mon.latencyLocked(rec)
	case audit.KindQuarantine:
		if !slices.Contains(verificationFailures, rec.Reason) {
			break
		}
		mon.failures++
		if t := mon.thresholds().FailuresPerMinute; t > 0 && mon.failures > t {
			raise(Alert{Rule: RuleFailureBurst, Count: mon.failures, Threshold: float64(t),
				Detail: fmt.Sprintf("%d messages failed verification or opening this minute", mon.failures)}, "")
		}
	case audit.KindPermissionRefusal, audit.KindAuthFailure:
		mon.refusals++
		if t := mon.thresholds().RefusalsPerMinute; t > 0 && mon.refusals > t {
			raise(Alert{Rule: RuleRefusalBurst, Count: mon.refusals, Threshold: float64(t),
				Detail: fmt.Sprintf("%d refusals this minute", mon.refusals)}, "")
		}
	}
	return out
}

// rollLocked starts a new window when t is past the current one, folding
// each sender's count into its baseline.
func (mon *Monitor) rollLocked(t time.Time) {
	start := t.Truncate(Window)
	if !start.After(mon.window) {
		return
	}
	// Windows with no publish count as zero, so a long quiet spell lowers
	// the baseline as it should.
	gap := 1
	if !mon.window.IsZero() {
		gap = int(start.Sub(mon.window) / Window)
	}
	for _, r := range mon.rates {
		for i := range min(gap, baselineWindows+1) {
			n := 0.0
			if i == 0 {
				n = float64(r.count)
			}
			if r.windows == 0 {
				r.baseline = n
			} else {
				r.baseline = (1-baselineWeight)*r.baseline + baselineWeight*n
			}
			r.windows++
		}
		r.count = 0
	}
	mon.window, mon.failures, mon.refusals = start, 0, 0
	clear(mon.fired)
}

// unknownLocked checks that the acting machine, or a refused message's
// sender, is one the policy lists.
func (mon *Monitor) unknownLocked(rec audit.Record) (Alert, bool) {
	if rec.Kind == audit.KindQuarantine && rec.Reason == "unknown-sender" {
		return Alert{Rule: RuleUnknownSender, Actor: rec.Sender,
			Detail: fmt.Sprintf("%s refused a message from unknown sender %q", rec.Actor, rec.Sender)}, true
	}
	if mon.pol == nil || rec.Actor == "" || rec.Source != audit.SourceMachine && rec.Kind != audit.KindConnect {
		return Alert{}, false
	}
	if mon.pol.Machine(rec.Actor) == nil {
		return Alert{Rule: RuleUnknownSender, Actor: rec.Actor,
			Detail: fmt.Sprintf("machine %q, not in the policy, recorded %s", rec.Actor, rec.Kind)}, true
	}
	return Alert{}, false
}

// publishLocked applies the rules about publishes: sender rate, new
// recipient and declared hours.
func (mon *Monitor) publishLocked(rec audit.Record, raise func(Alert, string)) {
	if rec.MessageID != "" && len(mon.published) < maxKept {
		mon.published[rec.MessageID+"/"+rec.Recipient] = rec.Time
	}
	sender := rec.Actor
	flow := fmt.Sprintf("%s -> %s (%s)", sender, rec.Recipient, rec.Type)
	r := mon.rates[sender]
	if r == nil {
		r = &rate{}
		mon.rates[sender] = r
	}
	r.count++
	th := mon.thresholds()
	if th.MessagesPerMinute > 0 && r.count > th.MessagesPerMinute {
		raise(Alert{Rule: RuleSenderRate, Actor: sender, Count: r.count, Threshold: float64(th.MessagesPerMinute),
			Detail: fmt.Sprintf("%s published %d messages this minute, over %d",
				sender, r.count, th.MessagesPerMinute)}, sender)
	}
	if limit := th.RateFactor * r.baseline; th.RateFactor > 0 && r.windows >= baselineWindows &&
		r.count >= minRateBurst && float64(r.count) > limit {
		raise(Alert{Rule: RuleSenderRate, Actor: sender, Count: r.count, Threshold: limit,
			Detail: fmt.Sprintf("%s published %d messages this minute, %.1f times its baseline of %.1f",
				sender, r.count, float64(r.count)/max(r.baseline, 0.1), r.baseline)}, sender)
	}
	key := sender + "/" + rec.Type + "/" + rec.Recipient
	if !mon.recipients[key] {
		mon.recipients[key] = true
		// Without a policy the first recipient of a flow is learnt, not
		// alerted; any later new one is an anomaly.
		if mon.pol != nil || mon.flowSeenLocked(sender, rec.Type) {
			raise(Alert{Rule: RuleNewRecipient, Actor: sender, Flow: flow,
				Detail: fmt.Sprintf("%s sent %s to %s, never seen for this flow",
					sender, rec.Type, rec.Recipient)}, key)
		}
	}
	for _, h := range th.Hours {
		if h.From == sender && slices.Contains(h.To, rec.Recipient) &&
			(len(h.Types) == 0 || slices.Contains(h.Types, rec.Type)) && !h.Contains(rec.Time) {
			raise(Alert{Rule: RuleOutsideHours, Actor: sender, Flow: flow,
				Detail: fmt.Sprintf("%s active at %s, outside its hours %s %s", flow,
					rec.Time.Format(time.RFC3339), h.Between, h.Zone)}, flow)
		}
	}
}

// flowSeenLocked reports whether sender has sent typ to anyone before.
func (mon *Monitor) flowSeenLocked(sender, typ string) bool {
	n := 0
	prefix := sender + "/" + typ + "/"
	for k := range mon.recipients {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			n++
		}
	}
	return n > 1
}

func (mon *Monitor) latencyLocked(rec audit.Record) {
	at, ok := mon.published[rec.MessageID+"/"+rec.Actor]
	if !ok || rec.MessageID == "" {
		return
	}
	stage := "delivery"
	if rec.Kind == audit.KindOpen {
		stage = "open"
		delete(mon.published, rec.MessageID+"/"+rec.Actor)
	}
	mon.m.latency.WithLabelValues(stage).Observe(rec.Time.Sub(at).Seconds())
}
