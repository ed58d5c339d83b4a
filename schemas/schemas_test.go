package schemas_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"phix.dev/phix/schemas"
)

// TestFieldNumbers pins the wire schema of envelope-v1.md section 2 and
// envelope-v2.md section 2: field numbers, names and kinds are part of the
// formats and must never change.
func TestFieldNumbers(t *testing.T) {
	type fields = map[protoreflect.FieldNumber]string
	tests := []struct {
		msg  proto.Message
		name protoreflect.FullName
		want fields
	}{
		{&schemas.Envelope{}, "phix.envelope.v1.Envelope", fields{
			1: "header bytes", 2: "signature bytes", 3: "ciphertext bytes",
			4: "wrapped_keys repeated message",
			5: "signer_key_id string", 6: "batch message", 7: "delegation message",
		}},
		{&schemas.Header{}, "phix.envelope.v1.Header", fields{
			1: "version uint32", 2: "message_id string", 3: "sender string",
			4: "recipients repeated string", 5: "subject string",
			6: "content_type string", 7: "schema_id string",
			8: "created_unix_nano int64", 9: "data_key_id string",
			10: "key_commitment bytes", 11: "salt bytes", 12: "signer_key_id string",
		}},
		{&schemas.WrappedKey{}, "phix.envelope.v1.WrappedKey", fields{
			1: "recipient string", 2: "wrapped bytes",
		}},
		{&schemas.BatchProof{}, "phix.envelope.v1.BatchProof", fields{
			1: "tree_size uint64", 2: "leaf_index uint64", 3: "path repeated bytes",
		}},
		{&schemas.Delegation{}, "phix.envelope.v1.Delegation", fields{
			1: "statement bytes", 2: "signature bytes",
		}},
	}
	for _, tt := range tests {
		d := tt.msg.ProtoReflect().Descriptor()
		if d.FullName() != tt.name {
			t.Errorf("message name = %s, want %s", d.FullName(), tt.name)
		}
		got := fields{}
		for i := range d.Fields().Len() {
			f := d.Fields().Get(i)
			desc := string(f.Name()) + " "
			if f.Cardinality() == protoreflect.Repeated {
				desc += "repeated "
			}
			got[f.Number()] = desc + f.Kind().String()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s fields mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}
