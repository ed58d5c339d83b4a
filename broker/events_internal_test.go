package broker

import "testing"

func TestParseViolation(t *testing.T) {
	tests := []struct {
		name string
		line string
		want violation
		ok   bool
	}{
		{
			"publish",
			`127.0.0.1:5000 - cid:7 - "v1.56.0:go:billing" - "$G/CN=billing,O=phix" - Publish Violation - Subject "phix.msg.lab-feed.x.y"`,
			violation{cid: 7, action: "publish", subject: "phix.msg.lab-feed.x.y"}, true,
		},
		{
			"subscribe with a SID",
			`127.0.0.1:5000 - cid:12 - "v1:go:m" - Subscription Violation - Subject "phix.msg.>", SID 3`,
			violation{cid: 12, action: "subscribe", subject: "phix.msg.>"}, true,
		},
		{
			"a client name that imitates a violation cannot move the cid",
			`127.0.0.1:5000 - cid:9 - "cid:1 - Publish Violation - Subject \"fake\"" - Publish Violation - Subject "real"`,
			violation{cid: 9, action: "publish", subject: "real"}, true,
		},
		{"no cid", `Publish Violation - Subject "x"`, violation{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseViolation(tc.line)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseViolation(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
			}
		})
	}
}
