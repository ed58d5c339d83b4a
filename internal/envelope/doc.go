// Package envelope seals, decodes, verifies and opens phix envelopes,
// format versions 1 and 2 (schemas/envelope-v1.md and envelope-v2.md). It
// is the only code that builds or parses envelopes; producer and consumer
// both use it.
//
// [Seal] writes version 1, one signature per envelope. [Prepare] and
// [SignBatch] write version 2, where one signature covers the Merkle root
// of a batch of envelopes and each envelope carries its inclusion proof,
// so that a key service signs once per batch; a version 2 envelope may
// also leave its wrapped keys to the wrapped-key registry. With a
// [Session] the batch is signed by a short-lived session key that the
// identity key delegated to once, and each envelope carries the
// delegation (envelope-v2.md section 6). [Decode] reads both versions,
// and a [Verifier] remembers verified batch signatures and delegations.
//
// An envelope carries one message copy: a signed cleartext header, an
// AES-256-GCM ciphertext of the payload, and the message's data key
// wrapped for each reader. The payload key is derived from the data key
// and a per-envelope random salt with HKDF-SHA256, and the header commits
// to the data key.
//
// # Guarantees
//
// For an envelope that passes [Decode], [Envelope.CheckSubject],
// [Envelope.Verify] and [Envelope.Open]:
//
//   - the header and ciphertext are exactly what the holder of the signing
//     key named by the header's sender and signer key ID produced;
//   - the envelope was delivered on the subject its sender addressed,
//     so a copy for one recipient cannot be replayed to another;
//   - the plaintext is the one sealed under the data key the header commits
//     to, even though wrapped keys are outside the signature;
//   - the encoding is canonical: one message has one encoding, and
//     re-encoding a decoded envelope gives back the input byte for byte.
//
// Not guaranteed: freshness (a verified envelope can be replayed on its own
// subject; readers de-duplicate on [Header.MessageID]), confidentiality of
// the header (metadata is cleartext and must not carry PHI), and anything
// about who holds wrapped keys (rewrap and grant change them without
// re-signing).
//
// # Verification order
//
// A reader must, in this order:
//
//  1. [Decode] the bytes; reject on any error.
//  2. [Envelope.CheckSubject] with the subject the message arrived on.
//  3. Look up the public key of [Header.Sender] version [Header.SignerKeyID]
//     in the directory and [Envelope.Verify] with it.
//  4. Take its own [Envelope.WrappedKey] and unwrap it with
//     [keys.Provider.UnwrapKey] and [Header.DataKeyID].
//  5. [Envelope.Open] with the data key, which checks the key ID and the
//     commitment (in constant time) before decrypting.
//
// Nothing is unwrapped before the signature verifies: unwrapping may cost
// a call to a key service, and an unauthenticated envelope must not be
// able to trigger one. Open and WrappedKey enforce this.
//
// Every failure in step 5 is [ErrOpen], without saying which check failed.
//
// In version 2, step 3 recomputes the batch root from the envelope's own
// inclusion proof and checks the signature over it and the batch size
// (with a delegation: first the delegation, with the sender's key, and
// its binding to the header's sender, key version and creation time,
// then the signature with the session key);
// step 4 falls back to the wrapped-key registry when the envelope carries
// no key for the reader (the consumer package does this).
//
// # Compatibility
//
// This package reads and writes versions 1 and 2. A header with another
// version fails with [ErrVersion] before any other check, so that a
// reader can tell "too new" from "corrupt". Field numbers, HKDF info
// strings, the signature inputs and the limits are fixed per version;
// changing any of them needs a new version. Decode dispatches on the
// version before anything else and applies that version's rules only.
package envelope
