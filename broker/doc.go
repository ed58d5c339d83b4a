// Package broker runs phix's message broker: nats-server embedded in the
// process, with JetStream storing sealed messages on disk.
//
// The broker never sees plaintext. It stores and routes envelopes that
// producers sealed, and its whole job is to make sure each machine can
// publish only under its own name and read only its own inbox.
//
// # Transport and identity
//
// Every network client must speak TLS 1.3 and present a client certificate
// that chains to [Config].TLS.ClientCAs; plaintext and TLS 1.2 connections
// are refused. There are no passwords, tokens or anonymous users. A
// certificate with subject exactly CN=<machine>,O=phix and no SANs maps to
// the nats user "CN=<machine>,O=phix"; a certificate for any name not in
// [Config].Machines is refused.
//
// # Streams and consumers
//
// Start creates or updates, on every start:
//   - stream PHIX_MSGS on phix.msg.>, file storage, limits retention,
//     duplicate window [Config].DuplicateWindow, message size limit
//     [Config].MaxPayload, deletes denied;
//   - stream PHIX_QUARANTINE on phix.quarantine.>, file storage;
//   - for each machine M, durable pull consumer inbox-M on PHIX_MSGS with
//     filter phix.msg.*.M.*, explicit acks, [InboxAckWait] and unlimited
//     deliveries.
//
// They are managed through an in-process connection that authenticates
// with an nkey generated in memory at [New] and permitted only for
// in-process connections, so no administrative credential exists on disk
// or on the network.
//
// # Permissions
//
// Machine M may publish only on
//
//	phix.msg.M.>                               its own messages
//	phix.quarantine.M                          messages it refuses
//	$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-M    jetstream Consumer
//	$JS.API.CONSUMER.MSG.NEXT.PHIX_MSGS.inbox-M  Fetch, Messages, Next
//	$JS.ACK.PHIX_MSGS.inbox-M.>                Ack, Nak, Term, InProgress
//
// and may subscribe only on _INBOX.M.>, so clients must use
// nats.CustomInboxPrefix with [subjects.ReplyPrefix]. Everything else is
// denied, including stream and consumer management, message gets (direct
// or through the API), account info, other machines' subjects, consumers
// and reply inboxes.
package broker
