// Package registry keeps wrapped data keys in a JetStream key-value bucket
// beside the messages they open, so that who can read a stored message can
// change without touching the message.
//
// With the Vault key provider a producer stores each data key wrapped for
// each reader in the registry, and its envelopes carry no wrapped keys.
// That makes three operations possible on messages already stored:
//
//   - rewrap: re-encrypt a reader's wrapped keys under the newest version
//     of its key (inside Vault), after which older versions can be retired;
//   - grant: wrap existing data keys for another reader, such as an
//     auditor, and record the grant;
//   - destroy: erase every wrapped copy of one data key, leaving a
//     tombstone record, so that exactly the messages sealed under it can
//     no longer be opened while the sealed messages, with their signed
//     headers, remain as proof that they existed.
//
// # Layout
//
// The bucket is [subjects.DataKeyBucket]; a key is
// sender.dataKeyID.reader (see [subjects.DataKeyKey]) and its value is the
// provider's wrapped key, opaque here. Keys whose last token starts with
// an underscore are records, never wrapped keys: the tombstone of a
// destroyed data key and the record of each grant.
//
// # Access
//
// The broker enforces who may do what with subject permissions alone:
// a machine may store entries only under its own name as sender and only
// for readers it may send to, and may fetch only entries that end in its
// own name. A [Client] is a machine's view and uses nothing else. An
// [Admin] needs the key administrator's permissions (list, replace,
// erase) and performs rewrap, grant and destroy.
//
// Wrapped keys are protected by the provider (a Vault transit key per
// reader), not by the registry: reading an entry gives nothing without
// the reader's key. The registry protects availability and the destroy
// guarantee, which is why only the key administrator may erase.
package registry
