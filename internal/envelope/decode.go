package envelope

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	"phix.dev/phix/schemas"
)

// marshalOptions produce the canonical encoding: fields in field-number
// order, each at most once, defaults omitted, minimal varints. Decode
// re-marshals with the same options and demands the input byte for byte.
var marshalOptions = proto.MarshalOptions{Deterministic: true}

// Decode parses a version 1 envelope strictly: b must be the canonical
// encoding, every field within its limit and the header self-consistent.
// Decode checks structure only; call [Envelope.CheckSubject] and
// [Envelope.Verify] before trusting anything in it. It does not retain b.
//
// Errors wrap [ErrVersion], [ErrMalformed], [ErrDuplicateRecipient],
// [ErrTooLarge] (as a [*FieldError]) or [ErrSubjectMismatch]. When several
// apply, a version other than [Version] is reported first.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, tooLarge("envelope", MaxEnvelopeSize)
	}
	pe := new(schemas.Envelope)
	if err := proto.Unmarshal(b, pe); err != nil {
		return nil, malformed("cannot parse envelope")
	}
	if len(pe.GetHeader()) > MaxHeaderSize {
		return nil, tooLarge("header", MaxHeaderSize)
	}
	ph := new(schemas.Header)
	if err := proto.Unmarshal(pe.GetHeader(), ph); err != nil {
		return nil, malformed("cannot parse header")
	}

	// The version is read before the canonical checks: a later version may
	// add fields that version 1 sees as unknown, and its readers should be
	// told "unsupported version", not "malformed".
	if v := ph.GetVersion(); v != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, v)
	}
	if err := checkCanonical(b, pe, ph); err != nil {
		return nil, err
	}

	e, err := fromProto(pe, ph)
	if err != nil {
		return nil, err
	}
	e.digest = sha256.Sum256(e.ciphertext)
	return e, nil
}

// checkCanonical rejects unknown fields anywhere (proto would otherwise keep
// and re-emit them, so re-encoding alone would not catch them) and any
// encoding other than the canonical one: duplicate, reordered or default
// valued fields, non-minimal varints and trailing bytes.
func checkCanonical(b []byte, pe *schemas.Envelope, ph *schemas.Header) error {
	if len(pe.ProtoReflect().GetUnknown()) > 0 || len(ph.ProtoReflect().GetUnknown()) > 0 {
		return malformed("unknown field")
	}
	for _, w := range pe.GetWrappedKeys() {
		if len(w.ProtoReflect().GetUnknown()) > 0 {
			return malformed("unknown field in wrapped_keys")
		}
	}
	if !reencodes(ph, pe.GetHeader()) {
		return malformed("header is not canonically encoded")
	}
	if !reencodes(pe, b) {
		return malformed("envelope is not canonically encoded")
	}
	return nil
}

func reencodes(m proto.Message, b []byte) bool {
	out, err := marshalOptions.Marshal(m)
	return err == nil && bytes.Equal(out, b)
}

// fromProto checks the field limits and shapes of a canonical envelope.
func fromProto(pe *schemas.Envelope, ph *schemas.Header) (*Envelope, error) {
	if len(pe.GetSignature()) != SignatureSize {
		return nil, malformed("signature is not %d bytes", SignatureSize)
	}
	if len(pe.GetCiphertext()) > MaxCiphertextSize {
		return nil, tooLarge("ciphertext", MaxCiphertextSize)
	}
	if len(pe.GetCiphertext()) < TagSize {
		return nil, malformed("ciphertext shorter than the tag")
	}

	h, err := headerFromProto(ph)
	if err != nil {
		return nil, err
	}
	if err := checkHeader(&h); err != nil {
		return nil, err
	}
	if err := checkToken("header.signer_key_id", h.SignerKeyID, MaxKeyIDLen); err != nil {
		return nil, err
	}

	ws := wrappedFromProto(pe.GetWrappedKeys())
	if err := checkWrappedKeys(ws); err != nil {
		return nil, err
	}
	return &Envelope{
		header:     pe.GetHeader(),
		h:          h,
		signature:  pe.GetSignature(),
		ciphertext: pe.GetCiphertext(),
		wrapped:    ws,
	}, nil
}

// encode returns the canonical encoding of an envelope's parts.
func encode(header, sig, ct []byte, ws []WrappedKey) ([]byte, error) {
	b, err := marshalOptions.Marshal(&schemas.Envelope{
		Header:      header,
		Signature:   sig,
		Ciphertext:  ct,
		WrappedKeys: wrappedToProto(ws),
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: encoding: %v", err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, tooLarge("envelope", MaxEnvelopeSize)
	}
	return b, nil
}
