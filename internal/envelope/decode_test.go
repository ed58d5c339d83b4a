package envelope_test

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/schemas"
)

// rawField is one encoded field, tag included.
type rawField struct {
	num protowire.Number
	raw []byte
}

func splitFields(t testing.TB, b []byte) []rawField {
	t.Helper()
	var fs []rawField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			t.Fatalf("bad field %d", num)
		}
		fs = append(fs, rawField{num, b[:n+m]})
		b = b[n+m:]
	}
	return fs
}

func joinFields(fs []rawField) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.raw...)
	}
	return b
}

func bytesField(num protowire.Number, v []byte) rawField {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return rawField{num, protowire.AppendBytes(b, v)}
}

// withHeaderBytes replaces the header field of b with h, unchanged
// otherwise.
func withHeaderBytes(t testing.TB, b, h []byte) []byte {
	t.Helper()
	fs := splitFields(t, b)
	fs[0] = bytesField(1, h)
	return joinFields(fs)
}

func headerBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	return parse(t, b).env.Header
}

func TestDecodeRejects(t *testing.T) {
	f := newFixture(t)
	good := f.seal(t)
	if _, err := envelope.Decode(good); err != nil {
		t.Fatalf("Decode(good) = %v", err)
	}

	// edit builds an envelope by editing the parsed good one.
	edit := func(fn func(p parsed)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			p := parse(t, good)
			fn(p)
			return p.encode(t)
		}
	}
	// raw builds an envelope by editing the good one's top-level fields.
	raw := func(fn func(fs []rawField) []rawField) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return joinFields(fn(splitFields(t, good)))
		}
	}
	// rawHeader does the same to the header's fields.
	rawHeader := func(fn func(fs []rawField) []rawField) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			h := joinFields(fn(splitFields(t, headerBytes(t, good))))
			return withHeaderBytes(t, good, h)
		}
	}
	unknown := bytesField(15, []byte("x"))

	tests := []struct {
		name  string
		build func(t *testing.T) []byte
		want  error
	}{
		// Version comes first.
		{"version 3", edit(func(p parsed) { p.hdr.Version = 3 }), envelope.ErrVersion},
		{"version 0", edit(func(p parsed) { p.hdr.Version = 0 }), envelope.ErrVersion},
		{"an empty header", edit(func(p parsed) { proto.Reset(p.hdr) }), envelope.ErrVersion},
		{"version 3 with a field versions 1 and 2 do not know", func(t *testing.T) []byte {
			p := parse(t, good)
			p.hdr.Version = 3
			b := p.encode(t)
			h := append(headerBytes(t, b), unknown.raw...)
			return withHeaderBytes(t, b, h)
		}, envelope.ErrVersion},

		// Encoding.
		{"no bytes", func(*testing.T) []byte { return nil }, envelope.ErrVersion},
		{"a trailing zero byte", raw(func(fs []rawField) []rawField {
			return append(fs, rawField{0, []byte{0}})
		}), envelope.ErrMalformed},
		{"a trailing copy of the signature", raw(func(fs []rawField) []rawField {
			return append(fs, fs[1])
		}), envelope.ErrMalformed},
		{"the signature twice in a row", raw(func(fs []rawField) []rawField {
			return slices.Insert(fs, 1, fs[1])
		}), envelope.ErrMalformed},
		{"ciphertext before signature", raw(func(fs []rawField) []rawField {
			fs[1], fs[2] = fs[2], fs[1]
			return fs
		}), envelope.ErrMalformed},
		{"wrapped keys before the header", raw(func(fs []rawField) []rawField {
			return append(fs[3:], fs[:3]...)
		}), envelope.ErrMalformed},
		{"a wrapped key between signature and ciphertext", raw(func(fs []rawField) []rawField {
			return []rawField{fs[0], fs[1], fs[3], fs[2], fs[4]}
		}), envelope.ErrMalformed},
		{"a non-minimal length varint", raw(func(fs []rawField) []rawField {
			sig := parse(t, good).env.Signature
			b := protowire.AppendTag(nil, 2, protowire.BytesType)
			b = append(b, 0x80|byte(len(sig)), 0x00) // 64 as two bytes
			fs[1] = rawField{2, append(b, sig...)}
			return fs
		}), envelope.ErrMalformed},
		{"a truncated envelope", func(t *testing.T) []byte { return good[:len(good)-1] }, envelope.ErrMalformed},
		{"an unknown envelope field", raw(func(fs []rawField) []rawField {
			return append(fs, unknown)
		}), envelope.ErrMalformed},
		{"an unknown header field", rawHeader(func(fs []rawField) []rawField {
			return append(fs, unknown)
		}), envelope.ErrMalformed},
		{"an unknown wrapped key field", raw(func(fs []rawField) []rawField {
			v := append(slices.Clone(fs[3].raw[2:]), unknown.raw...)
			fs[3] = bytesField(4, v)
			return fs
		}), envelope.ErrMalformed},
		{"a field with the wrong wire type", rawHeader(func(fs []rawField) []rawField {
			b := protowire.AppendTag(nil, 1, protowire.Fixed32Type)
			fs[0] = rawField{1, protowire.AppendFixed32(b, 1)}
			return fs
		}), envelope.ErrVersion},
		{"a default-valued schema id present", rawHeader(func(fs []rawField) []rawField {
			i := slices.IndexFunc(fs, func(f rawField) bool { return f.num == 7 })
			fs[i] = bytesField(7, nil)
			return fs
		}), envelope.ErrMalformed},
		{"a header field twice", rawHeader(func(fs []rawField) []rawField {
			i := slices.IndexFunc(fs, func(f rawField) bool { return f.num == 2 })
			return slices.Insert(fs, i, fs[i])
		}), envelope.ErrMalformed},
		{"header fields out of order", rawHeader(func(fs []rawField) []rawField {
			fs[1], fs[2] = fs[2], fs[1]
			return fs
		}), envelope.ErrMalformed},
		{"invalid UTF-8 in the sender", rawHeader(func(fs []rawField) []rawField {
			i := slices.IndexFunc(fs, func(f rawField) bool { return f.num == 3 })
			fs[i] = bytesField(3, []byte{'l', 0xff, 'b'})
			return fs
		}), envelope.ErrMalformed},

		// Required fields.
		{"no message id", edit(func(p parsed) { p.hdr.MessageId = "" }), envelope.ErrMalformed},
		{"no sender", edit(func(p parsed) { p.hdr.Sender = "" }), envelope.ErrMalformed},
		{"no recipients", edit(func(p parsed) { p.hdr.Recipients = nil }), envelope.ErrMalformed},
		{"no subject", edit(func(p parsed) { p.hdr.Subject = "" }), envelope.ErrMalformed},
		{"no content type", edit(func(p parsed) { p.hdr.ContentType = "" }), envelope.ErrMalformed},
		{"no created time", edit(func(p parsed) {
			p.hdr.CreatedUnixNano = 0
		}), envelope.ErrMalformed},
		{"a created time before 1970", edit(func(p parsed) {
			p.hdr.CreatedUnixNano = -1
		}), envelope.ErrMalformed},
		{"no data key id", edit(func(p parsed) { p.hdr.DataKeyId = "" }), envelope.ErrMalformed},
		{"no key commitment", edit(func(p parsed) {
			p.hdr.KeyCommitment = nil
		}), envelope.ErrMalformed},
		{"no salt", edit(func(p parsed) { p.hdr.Salt = nil }), envelope.ErrMalformed},
		{"no signer key id", edit(func(p parsed) {
			p.hdr.SignerKeyId = ""
		}), envelope.ErrMalformed},
		{"no signature", edit(func(p parsed) { p.env.Signature = nil }), envelope.ErrMalformed},
		{"no ciphertext", edit(func(p parsed) { p.env.Ciphertext = nil }), envelope.ErrMalformed},
		{"no wrapped keys", edit(func(p parsed) {
			p.env.WrappedKeys = nil
		}), envelope.ErrMalformed},
		{"a wrapped key without recipient", edit(func(p parsed) {
			p.env.WrappedKeys[0].Recipient = ""
		}), envelope.ErrMalformed},
		{"a wrapped key without bytes", edit(func(p parsed) {
			p.env.WrappedKeys[0].Wrapped = nil
		}), envelope.ErrMalformed},

		// Fixed sizes and shapes.
		{"a 31-byte salt", edit(func(p parsed) {
			p.hdr.Salt = p.hdr.Salt[:31]
		}), envelope.ErrMalformed},
		{"a 33-byte salt", edit(func(p parsed) {
			p.hdr.Salt = append(p.hdr.Salt, 0)
		}), envelope.ErrMalformed},
		{"a 31-byte commitment", edit(func(p parsed) {
			p.hdr.KeyCommitment = p.hdr.KeyCommitment[:31]
		}), envelope.ErrMalformed},
		{"a 63-byte signature", edit(func(p parsed) {
			p.env.Signature = p.env.Signature[:63]
		}), envelope.ErrMalformed},
		{"a 65-byte signature", edit(func(p parsed) {
			p.env.Signature = append(p.env.Signature, 0)
		}), envelope.ErrMalformed},
		{"a ciphertext shorter than the tag", edit(func(p parsed) {
			p.env.Ciphertext = p.env.Ciphertext[:15]
		}), envelope.ErrMalformed},
		{"a message id with a space", edit(func(p parsed) {
			p.hdr.MessageId = "msg 1"
		}), envelope.ErrMalformed},
		{"a content type with a newline", edit(func(p parsed) {
			p.hdr.ContentType = "text/plain\n"
		}), envelope.ErrMalformed},
		{"a schema id with a non-ASCII letter", edit(func(p parsed) {
			p.hdr.SchemaId = "schéma"
		}), envelope.ErrMalformed},
		{"a signer key id with a tab", edit(func(p parsed) {
			p.hdr.SignerKeyId = "v\t1"
		}), envelope.ErrMalformed},
		{"an upper-case sender", edit(func(p parsed) {
			p.hdr.Sender = "Lab"
		}), envelope.ErrMalformed},
		{"a recipient with a dot", edit(func(p parsed) {
			p.hdr.Recipients = []string{"clinic", "w.rd"}
		}), envelope.ErrMalformed},
		{"a wrapped key for a wildcard", edit(func(p parsed) {
			p.env.WrappedKeys[1].Recipient = "*"
		}), envelope.ErrMalformed},

		// Recipients.
		{"a duplicate recipient", edit(func(p parsed) {
			p.hdr.Recipients = []string{"clinic", "clinic", "ward"}
		}), envelope.ErrDuplicateRecipient},
		{"a duplicate recipient out of order", edit(func(p parsed) {
			p.hdr.Recipients = []string{"ward", "clinic", "ward"}
		}), envelope.ErrDuplicateRecipient},
		{"unsorted recipients", edit(func(p parsed) {
			p.hdr.Recipients = []string{"ward", "clinic"}
		}), envelope.ErrMalformed},
		{"a duplicate wrapped key", edit(func(p parsed) {
			p.env.WrappedKeys[1].Recipient = p.env.WrappedKeys[0].Recipient
		}), envelope.ErrDuplicateRecipient},
		{"unsorted wrapped keys", edit(func(p parsed) {
			w := p.env.WrappedKeys
			w[0], w[1] = w[1], w[0]
		}), envelope.ErrMalformed},

		// Subject.
		{"a subject that is not a message subject", edit(func(p parsed) {
			p.hdr.Subject = "phix.quarantine.clinic"
		}), envelope.ErrMalformed},
		{"a subject from another sender", edit(func(p parsed) {
			p.hdr.Subject = "phix.msg.ward.clinic.result"
		}), envelope.ErrSubjectMismatch},
		{"a subject to a non-recipient", edit(func(p parsed) {
			p.hdr.Subject = "phix.msg.lab.home.result"
		}), envelope.ErrSubjectMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.build(t)
			e, err := envelope.Decode(b)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
			if e != nil {
				t.Errorf("Decode returned an envelope with error %v", err)
			}
		})
	}
}

func TestDecodeErrorText(t *testing.T) {
	p := parse(t, newFixture(t).seal(t))
	p.hdr.Version = 7
	_, err := envelope.Decode(p.encode(t))
	if got, want := err.Error(), "envelope: unsupported version 7"; got != want {
		t.Errorf("Decode(version 7) error = %q, want %q", got, want)
	}
	var fe *envelope.FieldError
	_, err = envelope.Decode(make([]byte, envelope.MaxEnvelopeSize+1))
	if !errors.As(err, &fe) {
		t.Fatalf("Decode(oversized) = %v, want a *FieldError", err)
	}
	if got, want := err.Error(), "envelope: envelope exceeds limit of 8912896"; got != want {
		t.Errorf("Decode(oversized) error = %q, want %q", got, want)
	}
}

// TestLimits puts every limited field just at and just over its limit. At
// the limit the field is not what makes Decode fail (the envelope is
// valid, or fails for another reason); over it, Decode returns a
// *FieldError naming the field and limit.
func TestLimits(t *testing.T) {
	f := newFixture(t)
	good := f.seal(t)

	type edit func(p parsed, n int)
	tests := []struct {
		field  string
		limit  int
		set    edit
		atFail bool // whether the envelope is invalid even at the limit
	}{
		{"header.message_id", envelope.MaxMessageIDLen, func(p parsed, n int) {
			p.hdr.MessageId = repeat('m', n)
		}, false},
		{"header.sender", envelope.MaxNameLen, func(p parsed, n int) {
			p.hdr.Sender = repeat('s', n)
			p.hdr.Subject = "phix.msg." + p.hdr.Sender + ".clinic.result"
		}, false},
		{"header.recipients", envelope.MaxRecipients, func(p parsed, n int) {
			p.hdr.Recipients = append(names("a", n-1), "clinic")
		}, false},
		{"header.recipients[]", envelope.MaxNameLen, func(p parsed, n int) {
			p.hdr.Recipients = []string{"clinic", repeat('w', n)}
		}, false},
		{"header.subject", envelope.MaxSubjectLen, func(p parsed, n int) {
			// No valid subject is this long; at the limit it fails on shape.
			p.hdr.Subject = "phix.msg.lab.clinic." + repeat('r', n-len("phix.msg.lab.clinic."))
		}, true},
		{"header.content_type", envelope.MaxContentTypeLen, func(p parsed, n int) {
			p.hdr.ContentType = repeat('c', n)
		}, false},
		{"header.schema_id", envelope.MaxSchemaIDLen, func(p parsed, n int) {
			p.hdr.SchemaId = repeat('s', n)
		}, false},
		{"header.data_key_id", envelope.MaxKeyIDLen, func(p parsed, n int) {
			p.hdr.DataKeyId = repeat('d', n)
		}, false},
		{"header.signer_key_id", envelope.MaxKeyIDLen, func(p parsed, n int) {
			p.hdr.SignerKeyId = repeat('k', n)
		}, false},
		{"wrapped_keys", envelope.MaxWrappedKeys, func(p parsed, n int) {
			p.env.WrappedKeys = nil
			for _, r := range names("r", n) {
				p.env.WrappedKeys = append(p.env.WrappedKeys, &schemas.WrappedKey{Recipient: r, Wrapped: []byte{1}})
			}
		}, false},
		{"wrapped_keys[].recipient", envelope.MaxNameLen, func(p parsed, n int) {
			p.env.WrappedKeys[1].Recipient = repeat('w', n)
		}, false},
		{"wrapped_keys[].wrapped", envelope.MaxWrappedKeySize, func(p parsed, n int) {
			p.env.WrappedKeys[0].Wrapped = make([]byte, n)
		}, false},
		{"ciphertext", envelope.MaxCiphertextSize, func(p parsed, n int) {
			p.env.Ciphertext = make([]byte, n)
		}, false},
		{"header", envelope.MaxHeaderSize, func(p parsed, n int) {
			// Pad with an unknown field to exactly n bytes: malformed, but
			// parsed, at the limit.
			h, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p.hdr)
			pad := n - len(h) - 3 // tag byte and a two-byte length
			p.hdr.ProtoReflect().SetUnknown(bytesField(15, make([]byte, pad)).raw)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			at := parse(t, good)
			tt.set(at, tt.limit)
			atBytes := at.encode(t)
			if tt.field == "header" && len(at.env.Header) != tt.limit {
				t.Fatalf("test built a %d-byte header, want %d", len(at.env.Header), tt.limit)
			}
			_, err := envelope.Decode(atBytes)
			if errors.Is(err, envelope.ErrTooLarge) || (err != nil) != tt.atFail {
				t.Errorf("at the limit: Decode = %v, want failure %v and not %v", err, tt.atFail, envelope.ErrTooLarge)
			}

			over := parse(t, good)
			tt.set(over, tt.limit+1)
			_, err = envelope.Decode(over.encode(t))
			var fe *envelope.FieldError
			if !errors.As(err, &fe) || *fe != (envelope.FieldError{Field: tt.field, Limit: tt.limit}) {
				t.Errorf("over the limit: Decode = %v, want FieldError{%s, %d}", err, tt.field, tt.limit)
			}
			if !errors.Is(err, envelope.ErrTooLarge) {
				t.Errorf("over the limit: Decode = %v, want it to wrap %v", err, envelope.ErrTooLarge)
			}
		})
	}
}

func TestEnvelopeSizeLimit(t *testing.T) {
	// A whole envelope at the limit whose ciphertext is too large is
	// reported for the ciphertext; one byte over, for the envelope.
	p := parse(t, newFixture(t).seal(t))
	p.env.Ciphertext = nil
	rest := len(p.encode(t))
	ctLen := envelope.MaxEnvelopeSize - rest - 1 - 4 // tag and 4-byte length
	p = parse(t, newFixture(t).seal(t))
	p.env.Ciphertext = make([]byte, ctLen)
	b := p.encode(t)
	if len(b) != envelope.MaxEnvelopeSize {
		t.Fatalf("built a %d-byte envelope, want %d", len(b), envelope.MaxEnvelopeSize)
	}

	var fe *envelope.FieldError
	if _, err := envelope.Decode(b); !errors.As(err, &fe) || fe.Field != "ciphertext" {
		t.Errorf("Decode(%d bytes) = %v, want the ciphertext FieldError", len(b), err)
	}
	if _, err := envelope.Decode(append(b, 0)); !errors.As(err, &fe) || fe.Field != "envelope" {
		t.Errorf("Decode(%d bytes) = %v, want the envelope FieldError", len(b)+1, err)
	}
}

func TestSealPlaintextLimit(t *testing.T) {
	f := newFixture(t)
	f.plaintext = make([]byte, envelope.MaxPlaintextSize)
	b := f.seal(t)
	if len(b) > envelope.MaxEnvelopeSize {
		t.Errorf("Seal(max plaintext) = %d bytes, over MaxEnvelopeSize %d", len(b), envelope.MaxEnvelopeSize)
	}
	pt, st, err := readAs(b, f.meta.Subject, f.signer.public(), "clinic")
	if err != nil || len(pt) != envelope.MaxPlaintextSize {
		t.Errorf("readAs(max plaintext) = %d bytes, %v, %v; want %d bytes",
			len(pt), st, err, envelope.MaxPlaintextSize)
	}

	f.plaintext = make([]byte, envelope.MaxPlaintextSize+1)
	_, err = envelope.Seal(t.Context(), f.signer, f.meta, f.dk, f.wrapped, f.plaintext)
	var fe *envelope.FieldError
	if !errors.As(err, &fe) || *fe != (envelope.FieldError{Field: "plaintext", Limit: envelope.MaxPlaintextSize}) {
		t.Errorf("Seal(max+1 plaintext) = %v, want FieldError{plaintext, %d}", err, envelope.MaxPlaintextSize)
	}
}

// TestWorstCaseFits checks the claim behind MaxEnvelopeSize: an envelope
// with every field at its limit still fits.
func TestWorstCaseFits(t *testing.T) {
	p := parse(t, newFixture(t).seal(t))
	p.hdr.MessageId = repeat('m', envelope.MaxMessageIDLen)
	p.hdr.Sender = repeat('s', envelope.MaxNameLen)
	p.hdr.Recipients = names(repeat('r', envelope.MaxNameLen-3), envelope.MaxRecipients)
	p.hdr.Subject = "phix.msg." + p.hdr.Sender + "." + p.hdr.Recipients[0] + "." + repeat('t', envelope.MaxNameLen)
	p.hdr.ContentType = repeat('c', envelope.MaxContentTypeLen)
	p.hdr.SchemaId = repeat('s', envelope.MaxSchemaIDLen)
	p.hdr.DataKeyId = repeat('d', envelope.MaxKeyIDLen)
	p.hdr.SignerKeyId = repeat('k', envelope.MaxKeyIDLen)
	p.hdr.CreatedUnixNano = 1<<63 - 1 // the longest varint a valid time has
	p.env.Ciphertext = make([]byte, envelope.MaxCiphertextSize)
	p.env.WrappedKeys = nil
	for _, r := range names(repeat('w', envelope.MaxNameLen-3), envelope.MaxWrappedKeys) {
		w := &schemas.WrappedKey{Recipient: r, Wrapped: make([]byte, envelope.MaxWrappedKeySize)}
		p.env.WrappedKeys = append(p.env.WrappedKeys, w)
	}
	b := p.encode(t)
	if len(p.env.Header) > envelope.MaxHeaderSize/2 {
		t.Errorf("worst-case header = %d bytes, want at most %d", len(p.env.Header), envelope.MaxHeaderSize/2)
	}
	if _, err := envelope.Decode(b); err != nil {
		t.Errorf("Decode(worst case, %d bytes) = %v", len(b), err)
	}
}
