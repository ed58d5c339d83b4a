package hl7_test

import (
	"errors"
	"strings"
	"testing"

	"phix.dev/phix/hl7"
)

func batchMsg(id string) string {
	return "MSH|^~\\&|A|F|B|H|20250314||ADT^A04|" + id + "|P|2.5.1\rPID|1||" + id + "\r"
}

func TestParseFileKinds(t *testing.T) {
	fhs, bhs := "FHS|^~\\&|A|F\r", "BHS|^~\\&|A|F\r"
	tests := []struct {
		name    string
		raw     string
		batches int
		ids     string
	}{
		{"file with one batch", fhs + bhs + batchMsg("M1") + batchMsg("M2") + "BTS|2\rFTS|1\r", 1, "M1 M2"},
		{"file with two batches", fhs + bhs + batchMsg("M1") + "BTS|1\r" + bhs + batchMsg("M2") + batchMsg("M3") + "BTS|2\rFTS|2\r", 2, "M1 M2 M3"},
		{"batch without file header", bhs + batchMsg("M1") + "BTS|1\r", 1, "M1"},
		{"messages without batch segments", batchMsg("M1") + batchMsg("M2"), 1, "M1 M2"},
		{"counts left empty", fhs + bhs + batchMsg("M1") + "BTS\rFTS\r", 1, "M1"},
		{"LF terminators", strings.ReplaceAll(fhs+bhs+batchMsg("M1")+"BTS|1\rFTS|1\r", "\r", "\n"), 1, "M1"},
		{"blank lines between messages", bhs + batchMsg("M1") + "\r\n" + batchMsg("M2") + "BTS|2\r", 1, "M1 M2"},
		{"custom delimiters per message", "FHS|@~\\&|A\r" + strings.Replace(batchMsg("M1"), "^~", "@~", 1) + batchMsg("M2") + "FTS|1\r", 1, "M1 M2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := hl7.ParseFile([]byte(tt.raw))
			if err != nil {
				t.Fatalf("ParseFile = %v, want nil", err)
			}
			var ids []string
			for _, m := range f.Messages() {
				ids = append(ids, m.ControlID())
				checkExact(t, m, m.Bytes())
			}
			if len(f.Batches) != tt.batches || strings.Join(ids, " ") != tt.ids {
				t.Errorf("ParseFile = %d batches with %v, want %d with %s", len(f.Batches), ids, tt.batches, tt.ids)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	fhs, bhs := "FHS|^~\\&|A|F\r", "BHS|^~\\&|A|F\r"
	tests := []struct {
		name, raw, text string
		want            error
	}{
		{"BTS counts too many", bhs + batchMsg("M1") + "BTS|2\r", "trailer counts 2 messages, found 1", hl7.ErrBatchCount},
		{"BTS counts too few", bhs + batchMsg("M1") + batchMsg("M2") + "BTS|1\r", "trailer counts 1 messages, found 2", hl7.ErrBatchCount},
		{"FTS counts wrong", fhs + bhs + batchMsg("M1") + "BTS|1\rFTS|3\r", "trailer counts 3 batches, found 1", hl7.ErrBatchCount},
		{"count not a number", bhs + batchMsg("M1") + "BTS|one\r", "count is not a number", hl7.ErrBatchCount},
		{"missing BTS", fhs + bhs + batchMsg("M1") + "FTS|1\r", "no BTS trailer", hl7.ErrBatchCount},
		{"missing BTS at end", bhs + batchMsg("M1"), "no BTS trailer", hl7.ErrBatchCount},
		{"missing FTS", fhs + bhs + batchMsg("M1") + "BTS|1\r", "no FTS trailer", hl7.ErrBatchCount},
		{"no messages", fhs + "FTS|0\r", "no messages", hl7.ErrNotHL7},
		{"segment outside a message", bhs + "PID|1\r", "outside a message", hl7.ErrSegment},
		{"segment after FTS", fhs + batchMsg("M1") + "FTS|1\rMSH|x\r", "after FTS", hl7.ErrSegment},
		{"bad message", bhs + batchMsg("M1") + "MSH|^~\\&|A\rpid|1\rBTS|2\r", "message 2", hl7.ErrSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hl7.ParseFile([]byte(tt.raw))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("ParseFile = %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
}
