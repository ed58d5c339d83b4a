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

// Decode parses a version 1 or version 2 envelope strictly: b must be the
// canonical encoding, every field within its limit and the header
// self-consistent, with the rules of the version the header names.
// Decode checks structure only; call [Envelope.CheckSubject] and
// [Envelope.Verify] before trusting anything in it. It does not retain b.
//
// Errors wrap [ErrVersion], [ErrMalformed], [ErrDuplicateRecipient],
// [ErrTooLarge] (as a [*FieldError]) or [ErrSubjectMismatch]. When several
// apply, an unsupported version is reported first.
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
	// add fields that this reader sees as unknown, and its readers should
	// be told "unsupported version", not "malformed".
	v := ph.GetVersion()
	if v != Version1 && v != Version2 {
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
	if v == Version1 {
		err = e.finishV1(pe)
	} else {
		err = e.finishV2(pe)
	}
	if err != nil {
		return nil, err
	}
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
	if bp := pe.GetBatch(); bp != nil && len(bp.ProtoReflect().GetUnknown()) > 0 {
		return malformed("unknown field in batch")
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

// fromProto checks the field limits and shapes that both versions share.
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
	return &Envelope{
		header:     pe.GetHeader(),
		h:          h,
		signature:  pe.GetSignature(),
		ciphertext: pe.GetCiphertext(),
		wrapped:    wrappedFromProto(pe.GetWrappedKeys()),
	}, nil
}

// finishV1 applies the rules of version 1: the signer key ID is in the
// header, at least one wrapped key, no version 2 field.
func (e *Envelope) finishV1(pe *schemas.Envelope) error {
	if pe.GetSignerKeyId() != "" || pe.GetBatch() != nil || pe.GetDelegation() != nil {
		return malformed("signer_key_id, batch or delegation in a version 1 envelope")
	}
	if err := checkToken("header.signer_key_id", e.h.SignerKeyID, MaxKeyIDLen); err != nil {
		return err
	}
	if err := checkWrappedKeys(e.wrapped, true); err != nil {
		return err
	}
	e.signed = signedMessage(e.header, &e.digest)
	return nil
}

// finishV2 applies the rules of version 2: the signer key ID is in the
// envelope, wrapped keys are optional, and the batch proof must fit its
// tree. It computes the root the signature must cover.
func (e *Envelope) finishV2(pe *schemas.Envelope) error {
	if e.h.SignerKeyID != "" {
		return malformed("header.signer_key_id in a version 2 envelope")
	}
	if err := checkToken("signer_key_id", pe.GetSignerKeyId(), MaxKeyIDLen); err != nil {
		return err
	}
	if err := checkWrappedKeys(e.wrapped, false); err != nil {
		return err
	}
	p, err := proofFromProto(pe.GetBatch())
	if err != nil {
		return err
	}
	root, ok := rootFromPath(leafHash(e.header, &e.digest), p.index, p.size, p.path)
	if !ok {
		return malformed("batch.path does not fit the tree") // proofFromProto checked the length
	}
	if pd := pe.GetDelegation(); pd != nil {
		if e.deleg, err = delegationFromProto(pd); err != nil {
			return err
		}
	}
	e.h.SignerKeyID = pe.GetSignerKeyId()
	e.proof = p
	e.signed = rootMessage(p.size, &root)
	return nil
}

// proofFromProto checks a batch proof's shape: the tree size within its
// limit, the index inside the tree, and exactly as many 32-byte hashes as
// the leaf's audit path has.
func proofFromProto(bp *schemas.BatchProof) (*batchProof, error) {
	if bp == nil {
		return nil, malformed("batch is missing")
	}
	size, index := bp.GetTreeSize(), bp.GetLeafIndex()
	if size > MaxBatchSize {
		return nil, tooLarge("batch.tree_size", MaxBatchSize)
	}
	if size == 0 || index >= size {
		return nil, malformed("batch.leaf_index %d outside a tree of %d", index, size)
	}
	raw := bp.GetPath()
	if len(raw) != pathLen(index, size) {
		return nil, malformed("batch.path has %d hashes, want %d", len(raw), pathLen(index, size))
	}
	p := &batchProof{size: size, index: index, path: make([][HashSize]byte, len(raw))}
	for i, h := range raw {
		if len(h) != HashSize {
			return nil, malformed("batch.path[] is not %d bytes", HashSize)
		}
		p.path[i] = [HashSize]byte(h)
	}
	return p, nil
}

// parts are the fields of an envelope to encode; signerKeyID, proof and
// delegation are set for version 2 only, delegation only when a session
// key signed.
type parts struct {
	header, signature, ciphertext []byte
	wrapped                       []WrappedKey
	signerKeyID                   string
	proof                         *batchProof
	delegation                    *schemas.Delegation
}

// encode returns the canonical encoding of an envelope's parts.
func encode(p *parts) ([]byte, error) {
	pe := &schemas.Envelope{
		Header:      p.header,
		Signature:   p.signature,
		Ciphertext:  p.ciphertext,
		WrappedKeys: wrappedToProto(p.wrapped),
		SignerKeyId: p.signerKeyID,
		Delegation:  p.delegation,
	}
	if p.proof != nil {
		pe.Batch = &schemas.BatchProof{TreeSize: p.proof.size, LeafIndex: p.proof.index}
		for i := range p.proof.path {
			pe.Batch.Path = append(pe.Batch.Path, p.proof.path[i][:])
		}
	}
	b, err := marshalOptions.Marshal(pe)
	if err != nil {
		return nil, fmt.Errorf("envelope: encoding: %v", err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, tooLarge("envelope", MaxEnvelopeSize)
	}
	return b, nil
}
